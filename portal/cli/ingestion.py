"""`flask ingestion ...`: thin click wrappers over portal.domain.features.ingestion (being written)."""
import click

ingestion = click.Group("ingestion", help="Data ingestion: keys for the ingestion endpoint.")
