"""`flask ingestion|campaign|social ...`: thin click wrappers over portal.domain.features (being written)."""
import click

ingestion = click.Group("ingestion", help="Data ingestion: keys for the ingestion endpoint.")
campaign = click.Group("campaign", help="Campaigns: list them and send what is due.")
social = click.Group("social", help="The social monitor: poll the connected feeds.")
