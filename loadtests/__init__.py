"""Locust load tests: HTTP only."""
