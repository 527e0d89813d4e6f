"""`dlzoo export` and `dlzoo serve`: take a trained run out of dlzoo."""

from __future__ import annotations

import argparse

from dlzoo.cli import add_device_option, command


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--format", default="pt2", choices=["pt2", "onnx"],
                        help="pt2: torch.export program (default); onnx: needs the `export` extra")
    parser.add_argument("--out", metavar="FILE", help="output file (default RUN_DIR/export/model.<format>)")


@command("export", "export a run's network (torch.export .pt2 or ONNX) with a JSON sidecar", _export_arguments)
def export(args: argparse.Namespace) -> None:
    from dlzoo.engine.checkpoint import latest
    from dlzoo.export import describe_inputs, export_run
    from dlzoo.runs import check_not_a_run_file, open_run

    run = open_run(args.run_dir)
    # An earlier checkpoint (RUN/checkpoints/epoch-NNNN) is exported beside the latest's, under its own name.
    name = "model" if run.checkpoint == latest(run.run_dir) else f"model-{run.checkpoint.name}"
    out = check_not_a_run_file(args.out) if args.out else run.run_dir / "export" / f"{name}.{args.format}"
    written, sidecar = export_run(run, args.format, out)
    print(f"wrote {written} and {written}.json")
    print(f"inputs: {describe_inputs(sidecar)}; the .json says how to prepare them and what comes out")


def _port(text: str) -> int:
    """A TCP port, checked here: out of range, the socket's bind() would fail with an OverflowError traceback."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port (0 to 65535; 0 picks a free one)")
    return port


def _host(text: str) -> str:
    """A host to listen on. An empty one is refused: the socket's bind() takes '' for every interface, which serves
    the run to the whole network, a choice to spell out as 0.0.0.0."""
    if not text:
        raise argparse.ArgumentTypeError("an empty host would listen on every interface; give 0.0.0.0 if that is "
                                         "meant, or a host name or address (default 127.0.0.1: this machine only)")
    return text


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--host", type=_host, default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every interface)")
    parser.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    add_device_option(parser)


@command("serve", "serve a run over HTTP: its predictions (POST /predict), or a generative run's grids (GET "
         "/generate); GET /info", _serve_arguments)
def serve(args: argparse.Namespace) -> None:
    from dlzoo.errors import UserError
    from dlzoo.runs import open_run
    from dlzoo.serve import make_server

    try:
        server = make_server(open_run(args.run_dir), args.host, args.port, args.device)
    except OSError as error:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}") from None
    host, port = server.server_address[:2]
    print(f"serving {args.run_dir} on http://{host}:{port}  ({server.served()}); Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
