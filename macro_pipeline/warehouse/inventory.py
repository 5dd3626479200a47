"""What the warehouse holds: row counts, valid-time spans and recorded_at watermarks per table."""

from __future__ import annotations

import sqlalchemy as sa

from macro_pipeline.warehouse.tables import FACT_TABLES, OTHER_TABLES


def inventory(engine: sa.Engine) -> dict:
    out: dict = {"facts": {}, "tables": {}}
    with engine.connect() as conn:
        for fact in FACT_TABLES:
            row = conn.execute(sa.text(
                f"SELECT count(*), count(DISTINCT {fact.entity}), min({fact.valid}), max({fact.valid}), "
                f"max(recorded_at), count(*) - count(DISTINCT ({', '.join(fact.keys)})) FROM {fact.table}"
            )).one()
            out["facts"][fact.table] = {
                "rows": row[0], "entities": row[1], "from": row[2], "to": row[3],
                "recorded_at_watermark": row[4], "revision_rows": row[5],
            }
        for table in OTHER_TABLES:
            out["tables"][table] = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    return out


def render_inventory(inv: dict) -> str:
    lines = [f"{'table':<22}{'rows':>10}{'entities':>10}{'revisions':>11}  {'valid from':<12}{'valid to':<12}recorded_at watermark"]
    for table, f in inv["facts"].items():
        span_from = str(f["from"])[:10] if f["from"] is not None else "-"
        span_to = str(f["to"])[:10] if f["to"] is not None else "-"
        mark = f["recorded_at_watermark"].isoformat() if f["recorded_at_watermark"] else "-"
        lines.append(f"{table:<22}{f['rows']:>10}{f['entities']:>10}{f['revision_rows']:>11}  {span_from:<12}{span_to:<12}{mark}")
    lines.append("")
    lines.append("  ".join(f"{t}={n}" for t, n in inv["tables"].items()))
    return "\n".join(lines)


def table_shape(engine: sa.Engine, table: str) -> tuple[int, list[tuple[str, str, bool]]]:
    """Row count and columns (name, PostgreSQL type, nullable) of one public table, in order."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT count(*) FROM {sa.sql.quoted_name(table, quote=True)}")).scalar_one()
        cols = conn.execute(sa.text(
            "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = :t ORDER BY ordinal_position"), {"t": table}).all()
    return int(rows), [(c[0], c[1], bool(c[2])) for c in cols]
