"""Automation of the strategy side: jobs, sensors and the nightly schedule."""
