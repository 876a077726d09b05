"""``python -m align_track`` runs the CLI."""

from align_track.cli.main import main

if __name__ == "__main__":
    main()
