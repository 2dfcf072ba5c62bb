"""`python -m benchbench.sim [--port 0 ...]`: the same command as `bench sim`."""

import typer

from benchbench.sim.cli import sim_command


def main() -> None:
    app = typer.Typer(add_completion=False)
    app.command()(sim_command)
    app()


if __name__ == "__main__":
    main()
