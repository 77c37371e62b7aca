"""``python -m kaizhou_gis`` runs the command-line interface."""
from kaizhou_gis.cli import main

main(prog_name="kaizhou-gis")
