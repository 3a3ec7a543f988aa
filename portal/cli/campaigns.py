"""`flask campaign ...`: thin click wrappers over portal.domain.features.campaigns (being written)."""
import click

campaign = click.Group("campaign", help="Campaigns: list them and send what is due.")
