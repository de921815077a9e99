"""The one command-line entry: `python -m shared.<command>` for each command below
(docs/operations.md), with one ladder of exit codes for all of them.

    0  done
    1  ran, but did not finish: a store was unavailable or refused, or work is still pending
       (running it again later is safe); for audit, disagreements were found (left)
    2  did not start: wrong arguments or settings; nothing was done
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

DONE, UNFINISHED, NOT_STARTED = 0, 1, 2


def migrate(argv: list[str]) -> int:
    """Apply the SQL migrations in sql/, in order, each exactly once."""
    from shared.core.config import check
    from shared.core.db import get_engine
    from shared.ops.migrate import ERASURE_ROLE, FUNCTIONS_ROLE, apply_migrations, grant_functions_role

    parser = _parser("migrate", migrate)
    parser.add_argument(
        "--functions-user",
        metavar="NAME",
        action="append",
        default=[],
        help=f"a database user of the functions, to make a member of {FUNCTIONS_ROLE} (repeatable)",
    )
    parser.add_argument(
        "--erasure-user",
        metavar="NAME",
        action="append",
        default=[],
        help=f"the database user of delete_my_data, erase_visitor and `shared.erasure`, "
        f"to make a member of {ERASURE_ROLE} (repeatable)",
    )
    args = parser.parse_args(argv)
    # Every setting, not only the database's: all that is wrong, before anything changes.
    _refuse_bad_settings(check())
    applied = apply_migrations(get_engine())
    for user in args.functions_user:
        grant_functions_role(get_engine(), user)
    for user in args.erasure_user:
        grant_functions_role(get_engine(), user, ERASURE_ROLE)
    print(f"migrations: {len(applied)} applied" + (f" ({', '.join(applied)})" if applied else ", schema up to date"))
    for user in args.functions_user:
        print(f"{user} is a member of {FUNCTIONS_ROLE}")
    for user in args.erasure_user:
        print(f"{user} is a member of {ERASURE_ROLE}")
    return DONE


def backfill(argv: list[str]) -> int:
    """Give numbers to visitors whose sessions were created while numbering failed."""
    from shared.core.db import get_engine
    from shared.ops.backfill import backfill as run_backfill

    _parser("backfill", backfill).parse_args(argv)
    print(run_backfill(get_engine()).line())
    return DONE


def import_uploads(argv: list[str]) -> int:
    """Bring the uploads Firestore recorded before table `uploads` existed into PostgreSQL, once."""
    from shared.core import config
    from shared.core.db import get_engine
    from shared.core.stores import firestore_client
    from shared.ops.import_uploads import import_uploads as run_import

    _parser("import_uploads", import_uploads).parse_args(argv)
    _refuse_bad_settings(config.check())
    print(run_import(get_engine(), firestore_client()).line())
    return DONE


def erasure(argv: list[str]) -> int:
    """Finish every pending withdrawal (resume), or say how many are pending (status)."""
    from shared.core import config
    from shared.core.db import get_engine
    from shared.rights.erasure import OtherStores, resume, status_line

    parser = _parser("erasure", erasure)
    parser.add_argument("command", choices=("resume", "status"))
    args = parser.parse_args(argv)
    _refuse_bad_settings(config.check())
    if args.command == "status":
        print(status_line(get_engine()))
        return DONE
    resumed = resume(get_engine(), OtherStores.of_instance())
    print(resumed.line())
    print(status_line(get_engine()))
    return UNFINISHED if resumed.still_pending else DONE


def maintenance(argv: list[str]) -> int:
    """What run_maintenance does on its schedules, once: resume erasures, retention, expired windows,
    and the Prolific deliveries that are due."""
    from shared.core import config
    from shared.core.db import get_engine
    from shared.ops.maintenance import run
    from shared.rights.erasure import OtherStores
    from shared.studies.deliveries import Prolific, deliver_due

    _parser("maintenance", maintenance).parse_args(argv)
    _refuse_bad_settings(config.check())
    report = run(get_engine(), OtherStores.of_instance(), config.guest_retention_days())
    answer = report.to_json()
    print(
        f"maintenance: {answer['erasures']['completed']} pending erasure(s) completed, "
        f"{answer['erasures']['stillPending']} still pending"
    )
    if report.retention.days is None:
        print("maintenance: retention is off (GUEST_RETENTION_DAYS is not set)")
    else:
        print(
            f"maintenance: retention ({report.retention.days} days) erased {report.retention.erased} guest(s), "
            f"{report.retention.pending} with Firestore or Storage still pending, {report.retention.kept} kept"
            + ("; more are left for the next run" if report.retention.more else "")
        )
    print(f"maintenance: forgot {report.expired_addresses} expired guest-creation window(s)")
    # Every task once: the Prolific deliveries that are due too (their own job runs them every minute).
    delivered = deliver_due(get_engine(), Prolific.from_settings())
    print(_deliveries_line(delivered))
    return UNFINISHED if (report.resumed.still_pending or report.retention.pending) else DONE


def deliveries(argv: list[str]) -> int:
    """List the Prolific completions made from the server (list), or make the pending ones due now
    and attempt them (retry; with --failed, the failed ones too)."""
    from shared.core import config
    from shared.core.db import get_engine
    from shared.studies.deliveries import Prolific, counts, deliver_due, listing, make_due

    parser = _parser("deliveries", deliveries)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every delivery: session, experiment, status, attempts, last error")
    retrying = commands.add_parser("retry", help="attempt every pending delivery now")
    retrying.add_argument("--failed", action="store_true", help="the failed ones too")
    args = parser.parse_args(argv)
    _refuse_bad_settings(config.check())
    engine = get_engine()
    if args.command == "list":
        for row in listing(engine):
            when = row.delivered_at or row.failed_at or row.next_attempt_at
            print(
                f"{row.session_id}\t{row.experiment_id}\t{row.status}\t{row.attempts} attempt(s)\t"
                f"{when.isoformat()}\t{row.last_error or ''}"
            )
        figures = counts(engine)
        print(f"deliveries: {figures.delivered} delivered, {figures.pending} pending, {figures.failed} failed")
        return DONE
    prolific = Prolific.from_settings()
    if prolific is None:
        print("PROLIFIC_API_TOKEN is not set: nothing can be delivered", file=sys.stderr)
        return NOT_STARTED
    due = make_due(engine, failed=args.failed)
    print(f"deliveries: {due} made due now")
    print(_deliveries_line(deliver_due(engine, prolific)))
    return UNFINISHED if counts(engine).pending else DONE


def _deliveries_line(run) -> str:
    if not run.token_set:
        return "deliveries: PROLIFIC_API_TOKEN is not set, none attempted"
    return (
        f"deliveries: {run.delivered} delivered, {run.retrying} to be retried, {run.failed} failed; "
        f"{run.forgotten} of erased sessions deleted"
    )


def audit(argv: list[str]) -> int:
    """Check that PostgreSQL, the bucket and Firestore agree: one line per kind of disagreement
    with its count; exit 1 when any is found (with --repair: when any it may mend is left)."""
    from shared.core import config
    from shared.core.db import get_engine
    from shared.core.stores import firestore_client, storage_client
    from shared.ops.audit import MIN_AGE_SECONDS, Audit
    from shared.visitors.uploads import TicketCheck

    parser = _parser("audit", audit)
    parser.add_argument(
        "--repair", action="store_true", help="mend what PostgreSQL determines (docs/operations.md), nothing else"
    )
    parser.add_argument(
        "--min-age",
        type=_seconds,
        default=MIN_AGE_SECONDS,
        metavar="SECONDS",
        help=f"skip objects and rows younger than this, in flight (default {MIN_AGE_SECONDS})",
    )
    args = parser.parse_args(argv)
    _refuse_bad_settings(config.check())
    # Tickets are read only to record a missing row (--repair): the check needs no key.
    mode = config.upload_tickets_mode() if args.repair else "off"
    tickets = TicketCheck(mode, None if mode == "off" else config.upload_ticket_key())
    report = Audit(
        get_engine(),
        storage_client(),
        firestore_client(),
        config.required_storage_bucket(),
        tickets,
        repair=args.repair,
        min_age_seconds=args.min_age,
    ).run()
    print("\n".join(report.lines()))
    return UNFINISHED if report.left() else DONE


def _seconds(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds")
    return int(value)


def researchers(argv: list[str]) -> int:
    """Grant, revoke and list the researcher claim of Firebase users."""
    from firebase_admin import exceptions

    from shared.research.researchers import describe, grant, listing, revoke
    from shared.web.auth import firebase_app

    parser = _parser("researchers", researchers)
    commands = parser.add_subparsers(dest="command", required=True)
    granting = commands.add_parser("grant", help="make EMAIL a researcher")
    granting.add_argument("email")
    granting.add_argument("--experiments", help="comma-separated experimentIds; every experiment without it")
    commands.add_parser("revoke", help="EMAIL is no longer a researcher").add_argument("email")
    commands.add_parser("list", help="every researcher and what it covers")
    args = parser.parse_args(argv)
    app = firebase_app()
    try:
        if args.command == "grant":
            experiments = [e.strip() for e in (args.experiments or "").split(",") if e.strip()]
            print(f"{args.email}: researcher for {describe(grant(app, args.email, experiments))}")
        elif args.command == "revoke":
            print(f"{args.email}: " + ("no longer a researcher" if revoke(app, args.email) else "was not a researcher"))
        else:
            for email, claim in listing(app):
                print(f"{email}\t{describe(claim)}")
    except exceptions.NotFoundError:
        print(f"No Firebase user has the email {args.email}.", file=sys.stderr)
        return UNFINISHED
    return DONE


def experiments(argv: list[str]) -> int:
    """Set, show and list experiments' configurations, and exclude a session, next to the database."""
    import json

    from shared.core import config
    from shared.core.db import get_engine
    from shared.core.encodings import compact_json
    from shared.research import researchers as roles
    from shared.studies import experiments as studies

    parser = _parser("experiments", experiments)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("set", help="configure an experiment from FILE, a JSON document ('-': stdin)").add_argument(
        "file"
    )
    commands.add_parser("show", help="an experiment's configuration, codes included").add_argument("experiment_id")
    commands.add_parser("list", help="every configured experiment, one line each (no codes)")
    commands.add_parser("exclude", help="mark a session excluded: it frees its place").add_argument("session_id")
    args = parser.parse_args(argv)
    _refuse_bad_settings(config.check())
    engine = get_engine()
    if args.command == "set":
        try:
            text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
            document = json.loads(text)
        except OSError as error:
            print(f"{args.file}: {error.strerror}", file=sys.stderr)
            return NOT_STARTED
        except ValueError as error:
            print(f"{args.file} is not JSON: {error}", file=sys.stderr)
            return NOT_STARTED
        stored = studies.configure(engine, studies.parse_document(document))
        print(f"{stored['experimentId']}: configured ({_summary(stored)}), updatedAt {stored['updatedAt']}")
    elif args.command == "show":
        print(compact_json(studies.configuration(engine, studies.experiment_id_of(args.experiment_id))))
    elif args.command == "list":
        for stored in studies.configurations(engine, roles.Scope(everything=True)):
            print(f"{stored['experimentId']}\t{_summary(stored)}")
    else:
        excluded = studies.exclude(engine, studies.session_id_of(args.session_id))
        print(f"{excluded['sessionId']}: excluded (experiment {excluded['experimentId'] or '(none)'})")
    return DONE


def _summary(stored: dict) -> str:
    """A configuration in one line, without its codes: active, platform, cap, conditions."""
    conditions = ", ".join(
        c["name"] + (f" (quota {c['quota']})" if c["quota"] is not None else "") for c in stored["conditions"]
    )
    cap = stored["maxParticipants"]
    return "; ".join(
        (
            "active" if stored["active"] else "inactive",
            f"platform {stored['platform']}",
            f"at most {cap} participants" if cap is not None else "no cap",
            f"conditions {conditions}" if conditions else "no conditions",
        )
    )


def export(argv: list[str]) -> int:
    """Write an export of the study's data: the bytes export_data answers."""
    from werkzeug.datastructures import MultiDict

    from shared.core import config
    from shared.core.db import get_engine
    from shared.research import researchers as roles
    from shared.research.export import export_data
    from shared.web.models import parse_query

    parser = _parser("export", export)
    parser.add_argument("--out", required=True, help="the file to write ('-' for standard output)")
    parser.add_argument(
        "--experiment",
        action="append",
        default=[],
        help="an experimentId (repeatable; '' for sessions without one); every experiment without it",
    )
    parser.add_argument("--from", dest="start", help="sessions created at or after this RFC 3339 time")
    parser.add_argument("--to", dest="end", help="sessions created before this RFC 3339 time")
    parser.add_argument("--format", default="zip", help="zip (default), csv or jsonl")
    parser.add_argument("--table", help="for csv and jsonl: responses (default), sessions, visitors or uploads")
    parser.add_argument("--include-test", action="store_true", help="researchers' test runs too")
    parser.add_argument(
        "--participant-ids", action="store_true", help="the sessions' platform participant ids (and participants.csv)"
    )
    args = parser.parse_args(argv)
    _refuse_bad_settings(config.check())
    pairs = [("experimentId", e) for e in args.experiment] + [
        (name, value)
        for name, value in (
            ("from", args.start),
            ("to", args.end),
            ("format", args.format),
            ("table", args.table),
            ("includeTest", "true" if args.include_test else None),
            ("participantIds", "true" if args.participant_ids else None),
        )
        if value is not None
    ]
    query = parse_query(MultiDict(pairs), export=True)
    # Run next to the database, by whoever may read it: a researcher of every experiment.
    scope = roles.scope(roles.Researcher(uid="", experiments=None), query.experiments)
    made = export_data(get_engine(), scope, query)
    target = sys.stdout.buffer if args.out == "-" else open(args.out, "wb")
    with target:
        for chunk in made.chunks:
            target.write(chunk)
    if args.out != "-":
        print(f"{args.out}: {made.filename.rsplit('.', 1)[-1]} export written", file=sys.stderr)
    return DONE


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    command.__name__: command
    for command in (
        migrate,
        backfill,
        import_uploads,
        erasure,
        maintenance,
        deliveries,
        audit,
        researchers,
        export,
        experiments,
    )
}


class _NotStarted(Exception):
    """Settings are wrong: each problem was printed, nothing was done."""


def _parser(name: str, command: Callable) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"python -m shared.{name}", description=command.__doc__)


def _refuse_bad_settings(problems: list[str]) -> None:
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise _NotStarted


def run(name: str, argv: list[str] | None = None) -> int:
    """Run one command; every failure becomes one line on stderr and its rung of the ladder."""
    import sqlalchemy
    from firebase_admin.exceptions import FirebaseError
    from google.auth.exceptions import DefaultCredentialsError

    from shared.core import failures
    from shared.core.config import ConfigError
    from shared.core.errors import DependencyUnavailable, InvalidArgument, ServiceError

    argv = sys.argv[1:] if argv is None else argv
    try:
        return COMMANDS[name](argv)
    except _NotStarted:
        return NOT_STARTED
    except ConfigError as error:
        print(error, file=sys.stderr)
        return NOT_STARTED
    except DefaultCredentialsError:
        print(
            "No Google credentials: against `make dev`, load its settings first (set -a; . .local/dev.env; set +a); "
            "in production, run `gcloud auth application-default login`.",
            file=sys.stderr,
        )
        return NOT_STARTED
    except InvalidArgument as error:
        print(error.message, file=sys.stderr)
        return NOT_STARTED
    except (DependencyUnavailable, ServiceError) as error:
        print(f"{name} failed: {error.message}", file=sys.stderr)
        return UNFINISHED
    except sqlalchemy.exc.SQLAlchemyError as error:
        print(f"{name} failed: {failures.one_line(error)}", file=sys.stderr)
        return UNFINISHED
    except FirebaseError as error:
        print(f"Firebase Authentication refused: {error}", file=sys.stderr)
        return UNFINISHED


def main(argv: list[str] | None = None) -> int:
    """`python -m shared.ops COMMAND ...`: the same commands under one name."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m shared.ops {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return NOT_STARTED
    return run(argv[0], argv[1:])
