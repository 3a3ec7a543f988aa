"""`flask social ...`: thin click wrappers over portal.domain.features.social (being written)."""
import click

social = click.Group("social", help="The social monitor: poll the connected feeds.")
