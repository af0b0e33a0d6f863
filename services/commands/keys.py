"""`radstream keys new NAME`: an Ed25519 key pair for signing threshold pushes and overrides."""

from __future__ import annotations

import argparse
from pathlib import Path

from radstream.services.commands.errors import CliError


def _new(args: argparse.Namespace) -> int:
    from radstream.domain.signatures import KeyFileError
    from radstream.services.signing import write_key_pair

    try:
        private, public, key = write_key_pair(args.name, Path(args.out), delegate=args.delegate)
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {private} (private, mode 0600: keep it to yourself) and {public}")
    print("add this line to every reader's RADSTREAM_TRUSTED_KEYS file:")
    print(key.public_line(args.delegate))
    if args.delegate:
        print("(delegate: it signs overrides for whoever its service authenticated, and nothing else; "
              "give it to one gateway only)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("keys", help="signing keys for threshold pushes and overrides")
    cmds = parser.add_subparsers(dest="keys_command", required=True)
    sp = cmds.add_parser("new", help="make an Ed25519 key pair: NAME.key (private) and NAME.pub (trusted-keys line)")
    sp.add_argument("name", help="who signs with it: the author of its pushes, the `by` of its overrides")
    sp.add_argument("--out", default=".", metavar="DIR", help="folder for NAME.key and NAME.pub (default: here)")
    sp.add_argument("--delegate", action="store_true",
                    help="a gateway's key: its overrides name the person the gateway authenticated, not the key "
                         "(the trusted-keys line ends in `delegate`; it signs nothing else; D-042)")
    sp.set_defaults(func=_new)
