"""The business rules: plain functions used alike by views, the JSON API, RQ jobs and CLI commands."""
