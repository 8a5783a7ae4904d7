"""``python -m par_lightning fit --config ...``: same entry point as the ``lightning`` script."""

from par_lightning.cli import main

main()
