"""The commands (promptrec-*): thin Hydra or argparse entries over functions in the layers below."""
