"""Command-line interface: ``python -m core train|sweep|score|models|synth``.

Bad input (an unreadable file, an unknown feature, an impossible k) ends with
exit status 2 and one line on stderr, never a traceback. Progress goes to
stderr so stdout stays clean for ``--json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.options import add_models, check_features, progress, version_or_active, whole_number

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def _emit(args, payload: dict, text: str) -> None:
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print(text)


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="PATH",
                   help="customer file (default: $SEGMENTLENS_DATA, else data/marketing_campaign.csv, else the sample)")


def _add_engine(p: argparse.ArgumentParser, sample: bool = True) -> None:
    """--engine, --chunk-rows (and --sample-size): beyond memory and beyond one machine."""
    p.add_argument("--engine", choices=["numpy", "spark"], default="numpy",
                   help="numpy (one machine; streams files larger than memory) or spark (pyspark, "
                        "$SEGMENTLENS_SPARK_MASTER); default numpy")
    p.add_argument("--chunk-rows", type=whole_number("--chunk-rows", 1000), metavar="N",
                   help="read the file in chunks of N rows (default: only files over 1.5M customers are streamed)")
    if sample:
        p.add_argument("--sample-size", type=whole_number("--sample-size", 100), default=None, metavar="N",
                       help="rows of the stratified sample kept with the version (default 50000)")


def _add_algorithm(p: argparse.ArgumentParser) -> None:
    """--algorithm and --option (core.algorithms)."""
    p.add_argument("--algorithm", default="kmeans", metavar="NAME",
                   help="kmeans (default), gmm, kprototypes (numeric + categorical features), hdbscan or consensus")
    p.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="an option of the algorithm, e.g. covariance=diag for gmm (repeatable; default: the algorithm's own)")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (one sub-command per task).

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(prog="python -m core", description="SegmentLens segmentation engine.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="fit a model and save it as a new version",
                       description="Load, clean, fit StandardScaler + k-means and save a new model version.")
    _add_data(p)
    add_models(p)
    p.add_argument("--k", type=whole_number("--k", 2), default=None,
                   help="number of segments (default 6; for --algorithm consensus, the k with the lowest PAC)")
    p.add_argument("--features", metavar="A,B,..", help="comma-separated features (default: the seven of the original project)")
    p.add_argument("--seed", type=whole_number("--seed", 0), default=42, help="random seed (default 42)")
    p.add_argument("--n-init", type=whole_number("--n-init"), default=10, help="k-means starts (default 10)")
    _add_algorithm(p)
    p.add_argument("--no-activate", action="store_true", help="save the version without making it active")
    p.add_argument("--adopt-suggested", action="store_true",
                   help="segments whose persona changed take the suggested name (default: keep their names)")
    _add_engine(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    p = sub.add_parser("sweep", help="metrics per k and the recommended k",
                       description="Fit k-means for each k and report inertia, silhouette, Calinski-Harabasz, Davies-Bouldin.")
    _add_data(p)
    p.add_argument("--k-min", type=whole_number("--k-min", 2), default=2,
                   help="smallest number of segments tried (default: %(default)s)")
    p.add_argument("--k-max", type=whole_number("--k-max", 2), default=10,
                   help="largest number of segments tried (default: %(default)s)")
    p.add_argument("--features", metavar="A,B,..",
                   help="comma-separated features (default: the seven of the original project)")
    p.add_argument("--seed", type=whole_number("--seed", 0), default=42, help="random seed (default: %(default)s)")
    p.add_argument("--n-init", type=whole_number("--n-init"), default=3,
                   help="k-means starts per k; the best is kept (default: %(default)s)")
    p.add_argument("--current-k", type=whole_number("--current-k", 2), default=6,
                   help="the k in use, compared in the reason (default: %(default)s)")
    p.add_argument("--stability", type=whole_number("--stability", 0), default=0, metavar="B",
                   help="bootstrap refits per k for the stability criterion (default: %(default)s, not measured)")
    _add_algorithm(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr (default: progress shown)")

    p = sub.add_parser("score", help="assign every customer of a file to a segment of the active model",
                       description="Write a CSV with ID, segment, segment_name, confidence, typicality.")
    _add_data(p)
    add_models(p)
    p.add_argument("--out", required=True, metavar="FILE",
                   help="CSV file to write (with --engine spark: a folder of Parquet files)")
    p.add_argument("--version", help="model version (default: the active one)")
    p.add_argument("--quiet", action="store_true")
    _add_engine(p, sample=False)

    p = sub.add_parser("models", help="list, activate, roll back, verify or clean up model versions",
                       description="Manage model versions in the registry.")
    msub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = msub.add_parser("list", help="every version", description="List every model version.")
    add_models(q)
    q.add_argument("--json", action="store_true")
    q = msub.add_parser("activate", help="make a version active", description="Make VERSION the active model.")
    add_models(q)
    q.add_argument("version", metavar="VERSION")
    q = msub.add_parser("delete", help="delete an inactive version",
                        description="Delete VERSION (never the active one) and its kept training data when no "
                                    "other version uses it; audited. Its number is never given again.")
    add_models(q)
    q.add_argument("version", metavar="VERSION")
    q = msub.add_parser("rollback", help="back to the previously active version",
                        description="Re-activate the version that was active before the current one.")
    add_models(q)
    q = msub.add_parser("verify", help="check every version's file (exit 1 if one fails)",
                        description="Check every version: manifest entry, file present, SHA-256, and that it "
                                    "loads as arrays of the recorded k and features. One line per version; "
                                    "exit status 1 when any fails. A version saved as a pickle by an earlier "
                                    "release is converted to arrays on the way (after its checksum matches).")
    add_models(q)
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q = msub.add_parser("gc", help="delete files no version needs",
                        description="Delete kept training data that no version uses, temporary files left by "
                                    "interrupted writes and model files without a manifest entry (each only "
                                    "when more than an hour old).")
    add_models(q)
    q.add_argument("--json", action="store_true", help="print one JSON object")
    _add_export_parser(msub)

    p = sub.add_parser("synth", help="write a synthetic customer file",
                       description="Generate synthetic customers in the real file's format (tab-separated, 29 columns).")
    p.add_argument("--n", type=whole_number("--n"), default=2240, help="customers (default 2240)")
    p.add_argument("--seed", type=whole_number("--seed", 0), default=7, help="random seed (default 7)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="file to write; FILE.parquet writes Parquet (any size, in blocks), else tab-separated text")
    _add_stability_parsers(sub)
    _add_access_parsers(sub)
    _add_campaign_parsers(sub)
    _add_data_parsers(sub)
    _add_rules_parsers(sub)
    _add_migration_parsers(sub)
    _add_postgres_options(sub)  # --query, score --mode (PostgreSQL URLs in --data/--out, issue 27)
    _add_value_parsers(sub)
    _add_algorithm_parsers(sub)
    return parser


def _add_stability_parsers(sub) -> None:
    """The `stability` and `drift` sub-commands."""
    p = sub.add_parser(
        "stability", help="are the segments real? bootstrap and enrolment-time stability",
        description="Fit the training pipeline on the data (nothing is saved), then measure bootstrap stability "
                    "(Hennig: mean Jaccard per segment, adjusted Rand index per refit) and stability over "
                    "cumulative enrolment snapshots (Dt_Customer). Spend and recency come from one extraction, "
                    "so 'time' means enrolment cohort. Segments are numbered and named as the active version's "
                    "(matched by centroids), as in `score` and on every page.")
    _add_data(p)
    add_models(p)
    p.add_argument("--k", type=whole_number("--k", 2), default=6, help="number of segments (default 6)")
    p.add_argument("--features", metavar="A,B,..",
                   help="comma-separated features (default: the seven of the original project)")
    p.add_argument("--resamples", type=whole_number("--resamples"), default=100, help="bootstrap resamples (default 100)")
    p.add_argument("--window", choices=["quarter", "month"], default="quarter",
                   help="enrolment snapshot every quarter (default) or month")
    p.add_argument("--seed", type=whole_number("--seed", 0), default=42, help="random seed (default 42)")
    p.add_argument("--n-init", type=whole_number("--n-init"), default=10,
                   help="k-means starts of the model, each snapshot and each bootstrap refit (default 10)")
    p.add_argument("--refit-n-init", type=whole_number("--refit-n-init"),
                   help="k-means starts of each bootstrap refit (default: as --n-init; fewer is faster but "
                        "makes segments look less stable than they are)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")

    p = sub.add_parser(
        "drift", help="compare a new customer file with the active model's training data",
        description="Population stability index per feature, segment shares under the active model, and "
                    "agreement of a refit on the new data; recommends keep, watch or retrain.")
    p.add_argument("--data", metavar="NEW", required=True, help="the new customer file (a later extract)")
    add_models(p)
    p.add_argument("--baseline-resamples", type=whole_number("--baseline-resamples"), default=20,
                   help="bootstrap refits of the training data the refit is judged against (default 20)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


# A CLI training waits this long for one the dashboard (or another command) is running on the same registry.
TRAIN_LOCK_WAIT = 3600.0


def _train(args) -> int:
    from core.cli.compare import parse_options
    from core.cli.data import mapping_arg
    from core.versions.pipeline import train
    from core.versions.registry import Registry

    step = progress(args.quiet)
    # One recipe for every input kind and engine; segments keep the active model's numbers, colours and names.
    version, model, meta = train(
        args.data, registry=Registry(args.models), kind=getattr(args, "input", None), mapping=mapping_arg(args),
        k=args.k if args.k is not None or args.algorithm == "consensus" else 6, features=args.features,
        seed=args.seed, n_init=args.n_init, activate=not args.no_activate, adopt_suggested=args.adopt_suggested, engine=args.engine, chunk_rows=args.chunk_rows,
        sample_size=args.sample_size, progress=step, lock_wait=TRAIN_LOCK_WAIT, algorithm=args.algorithm,
        options=parse_options(args.option), database=args.database)
    kind = meta.get("input", "canonical")
    payload = {
        "model_version": version, "active": not args.no_activate, "k": model.k, "input": kind,
        "n_customers": meta["n_customers"], "silhouette": meta["metrics"]["silhouette"],
        "features": meta["features"], "transforms": meta.get("transforms") or {}, "seed": model.seed,
        "metrics": meta["metrics"],
        "segments": [{"segment": i, "name": n, "size": s} for i, (n, s) in
                     enumerate(zip(meta["segment_names"], meta["segment_sizes"]))],
        "cleaning": {k: meta["cleaning"][k] for k in ("rows_read", "rows_used", "dropped", "changed", "flagged")},
        "data_source": meta["data_source"], "data_fingerprint": meta["data_fingerprint"],
        "identity": meta.get("identity"), "suggested_names": meta.get("suggested_names", []),
        "algorithm": meta.get("algorithm", {"name": "kmeans"}),
        **{key: meta[key] for key in ("transactions", "rfm") if key in meta},
    }
    lines = [f"model {version} ({'active' if not args.no_activate else 'not active'})"
             f"{'' if kind == 'canonical' else ' on ' + kind}: k={model.k}, "
             f"{meta['n_customers']:,} customers, silhouette {meta['metrics']['silhouette']:.3f}",
             f"cleaning: {meta['cleaning']['rows_read']:,} rows read, {meta['cleaning']['rows_used']:,} used; dropped "
             + ", ".join(f"{k} {v:,}" for k, v in meta["cleaning"]["dropped"].items() if v),
             f"features: {', '.join(meta['features'] + payload['algorithm'].get('categorical', []))}"
             + (f" (log scale: {', '.join(payload['transforms'])})" if payload["transforms"] else "")]
    if payload["algorithm"]["name"] != "kmeans":
        lines.append(f"algorithm: {payload['algorithm']['title']}" + "".join(
            f", {key} {value:,.4g}" if isinstance(value, float) else f", {key} {value}"
            for key, value in payload["algorithm"].get("info", {}).items()
            if key in ("bic", "aic", "gamma", "pac", "noise_share", "fitted_on", "assigned")))
    lines += [f"  segment {s['segment']}: {s['name']} ({s['size']:,})" for s in payload["segments"]]
    lines += [f"  persona of segment {s['segment']} changed: {s['name']!r} now looks like {s['suggested']!r} "
              "(train again with --adopt-suggested, or rename it on /profiles)" for s in payload["suggested_names"]]
    _emit(args, payload, "\n".join(lines))
    return 0


def _sweep(args) -> int:
    from core.fitting.model import standardise
    from core.versions.pipeline import parse_features, prepare, resolve_data_path
    from core.fitting.selection import sweep

    if args.k_max < args.k_min:
        raise UsageError(f"--k-max ({args.k_max}) must be at least --k-min ({args.k_min})")
    from core.algorithms import get_algorithm

    if get_algorithm(args.algorithm).name != "kmeans":
        return _sweep_algorithm(args)
    features = parse_features(args.features)
    step = progress(args.quiet)
    prepared = prepare(resolve_data_path(args.data), progress=step)
    frame = prepared.frame
    if args.k_max >= len(frame):
        raise UsageError(f"--k-max={args.k_max} needs more than {args.k_max} customers; the file has {len(frame):,} usable rows")
    Z, _, _ = standardise(frame[features].to_numpy(dtype=float))
    step("sweep")
    result = sweep(Z, args.k_min, args.k_max, n_init=args.n_init, seed=args.seed, current_k=args.current_k,
                   stability_resamples=args.stability, progress=lambda done, total, msg: step(f"sweep {done}/{total} ({msg})"))
    payload = result.to_dict()
    payload.update(features=features, data_source=prepared.source)
    from core.fitting.criteria import CRITERIA

    # One column per criterion of the registry (core.fitting.criteria), as wide as its header or its values.
    short = {"calinski_harabasz": "CH", "davies_bouldin": "DB", "stability": "ARI", "prediction_strength": "PS"}

    def cell(c, v) -> str:
        return "-" if v is None else f"{v:,.{c.digits if c.name != 'inertia' else 1}f}"
    cols = [(c, short.get(c.name, c.name), max(len(short.get(c.name, c.name)),
                                                *(len(cell(c, r.value(c.name))) for r in result.results)))
            for c in CRITERIA]
    rows = [f"{'k':>3} " + " ".join(f"{h:>{w}}" for _c, h, w in cols) + "  sizes"]
    rows += [f"{r.k:>3} " + " ".join(f"{cell(c, r.value(c.name)):>{w}}" for c, _h, w in cols) + "  "
             + " / ".join(f"{int(n):,}" for n in r.sizes)
             for r in result.results]
    rows.append(f"recommended k={result.recommended_k} ({result.silhouette_method} silhouette, "
                f"{result.n_customers:,} customers): {result.reason}")
    _emit(args, payload, "\n".join(rows))
    return 0


def _sweep_algorithm(args) -> int:
    """``sweep --algorithm NAME`` for an algorithm other than k-means (core.fitting.compare_algorithms)."""
    from core.cli.compare import parse_options, split_features
    from core.fitting.compare_algorithms import sweep_algorithm
    from core.versions.pipeline import prepare, resolve_data_path

    step = progress(args.quiet)
    prepared = prepare(resolve_data_path(args.data), progress=step)
    if args.k_max >= len(prepared.frame):
        raise UsageError(f"--k-max={args.k_max} needs more than {args.k_max} customers; the file has "
                         f"{len(prepared.frame):,} usable rows")
    features, categorical = split_features(args.features, prepared.frame)
    step("sweep")
    result = sweep_algorithm(prepared.frame, features, algorithm=args.algorithm, k_min=args.k_min, k_max=args.k_max,
                             categorical=categorical, seed=args.seed, options=parse_options(args.option))
    result["data_source"] = prepared.source

    def cell(v, digits=3):
        return "-" if v is None else f"{v:,.{digits}f}"
    rows = [f"{'k':>3} {'silhouette':>10} {'DB':>6} {'CH':>9} {'BIC':>11} {'AIC':>11} {'PAC':>6}  sizes"]
    rows += [f"{r['k']:>3} {cell(r['silhouette']):>10} {cell(r['davies_bouldin'], 2):>6} "
             f"{cell(r['calinski_harabasz'], 0):>9} {cell(r['bic'], 1):>11} {cell(r['aic'], 1):>11} "
             f"{cell(r['pac']):>6}  " + " / ".join(f"{int(n):,}" for n in r["sizes"]) for r in result["results"]]
    rows.append(f"recommended k={result['recommended_k']} for {result['algorithm']} "
                f"({result['fitted_on']:,} of {result['customers']:,} customers): {result['reason']}")
    _emit(args, result, "\n".join(rows))
    return 0


def _score(args) -> int:
    from core.cli.data import score_mapped
    from core.versions.exports import to_safe_csv
    from core.versions.pipeline import prepare, resolve_data_path
    from core.versions.registry import Registry
    from core.versions.naming import segment_names

    step = progress(args.quiet)
    registry = Registry(args.models)
    version_or_active(registry, args.version)
    if score_mapped(args):
        return 0
    model, meta = registry.load(args.version)
    if _score_streamed(args, model, meta, step):
        return 0
    prepared = prepare(resolve_data_path(args.data), progress=step)
    check_features(model, prepared.frame)
    step("score")
    scores = model.score(prepared.frame)
    names = segment_names(meta, model.k)
    out = scores.assign(ID=prepared.frame["ID"].to_numpy(),
                        segment_name=[names[s] for s in scores["segment"]])
    out = out[["ID", "segment", "segment_name", "confidence", "typicality"]]
    out["confidence"] = out["confidence"].round(4)
    out["typicality"] = out["typicality"].round(4)
    if model.soft:  # membership probability of each segment (Gaussian mixture), by segment number
        for s, column in enumerate(model.predict_proba(prepared.frame).T):
            out[f"probability_{s}"] = column.round(4)
    path = Path(args.out)
    if not path.parent.exists():
        raise UsageError(f"folder {path.parent} does not exist")
    path.write_text(to_safe_csv(out), encoding="utf-8")
    dropped = prepared.report.rows_read - prepared.report.rows_used
    print(f"scored {len(out):,} customers with model {meta['version']} -> {path}"
          + (f" ({dropped:,} rows not scored: see cleaning rules)" if dropped else ""), file=sys.stderr)
    return 0


def _score_streamed(args, model, meta, step) -> bool:
    """Score a large file (or with --chunk-rows) chunk by chunk; False when it is scored in one piece."""
    from core.versions.exports import to_safe_csv
    from core.versions.pipeline import resolve_data_path, score_chunks, streaming_source
    from core.versions.naming import segment_names

    if getattr(args, "engine", "numpy") != "numpy":  # the Spark engine scores in Spark, into Parquet
        from core.engines import FileScoring, get_engine

        runner = get_engine(args.engine)
        if not isinstance(runner, FileScoring):
            print(f"error: the {args.engine} engine cannot score a file where the data lives", file=sys.stderr)
            return True
        print(runner.score_file(resolve_data_path(args.data), model, meta, args.out, progress=step),
              file=sys.stderr)
        return True
    src = streaming_source(resolve_data_path(args.data), chunk_rows=args.chunk_rows)
    if src is None:
        return False
    path = Path(args.out)
    if not path.parent.exists():
        raise UsageError(f"folder {path.parent} does not exist")
    names = segment_names(meta, model.k)
    step("score")
    rows = 0
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            for i, out in enumerate(score_chunks(model, names, src, chunk_rows=args.chunk_rows)):
                text = to_safe_csv(out)
                handle.write(text if i == 0 else text.split("\n", 1)[1])
                rows += len(out)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    report = src.scan().report
    dropped = report.rows_read - report.rows_used
    print(f"scored {rows:,} customers with model {meta['version']} -> {path} (in chunks)"
          + (f" ({dropped:,} rows not scored: see cleaning rules)" if dropped else ""), file=sys.stderr)
    return True


def _models(args) -> int:
    from core.versions.registry import Registry

    registry = Registry(args.models)
    if args.action == "export":
        return _export(args, registry)
    if args.action in ("verify", "gc"):
        return _models_verify(args, registry) if args.action == "verify" else _models_gc(args, registry)
    if args.action == "list":
        versions = registry.versions()  # a damaged manifest: RegistryError (exit 2), or a warning if recovered
        if args.json:
            print(json.dumps(versions, indent=2, default=str))
        elif not versions:
            print(f"no model versions in {registry.root}")
        else:
            for v in versions:
                n = v.get("n_customers")
                metrics = v.get("metrics")
                silhouette = metrics.get("silhouette") if isinstance(metrics, dict) else None
                print(f"{'*' if v['active'] else ' '} {v['version']}  {v.get('created', '')}  k={v.get('k')}  "
                      f"n={f'{n:,}' if isinstance(n, int) else n}  "
                      f"silhouette={f'{silhouette:.3f}' if isinstance(silhouette, (int, float)) else '-'}  "
                      f"data={v.get('data_source')} ({v.get('data_fingerprint')})")
    elif args.action == "activate":
        registry.activate(args.version)
        print(f"{args.version} is now active")
    elif args.action == "delete":
        return _models_delete(args, registry)
    else:
        print(f"rolled back: {registry.rollback()} is now active")
    return 0


def _models_delete(args, registry) -> int:
    """Delete an inactive version (the registry refuses the active one), audited as the command line's user."""
    from core.access.audit import AuditLog
    from core.cli.access import cli_user
    from core.versions.registry import RegistryError

    log = AuditLog(registry.root)
    try:
        result = registry.delete(args.version)
    except RegistryError as exc:
        if registry.root.is_dir():
            log.append(cli_user(), "delete", str(args.version)[:40], "failed", str(exc))
        raise
    removed = ", ".join(r["path"] for r in result["removed"])
    log.append(cli_user(), "delete", args.version, "ok", f"removed {removed}" if removed else "")
    print(f"deleted {args.version} ({result['files']:,} file{'s' if result['files'] != 1 else ''}, "
          f"{result['bytes']:,} bytes)")
    return 0


def _models_verify(args, registry) -> int:
    """One line per version (ok / the reason); exit 1 when any fails."""
    rows = registry.verify()
    failed = [r for r in rows if not r["ok"]]
    if args.json:
        print(json.dumps({"ok": not failed, "versions": rows, "warnings": registry.warnings}, indent=2))
    elif not rows:
        print(f"no model versions in {registry.root}")
    else:
        for r in rows:
            print(f"{'ok    ' if r['ok'] else 'FAILED'} {r['version']}{' (active)' if r['active'] else ''}: "
                  f"{r['file'] if r['ok'] else r['status']}")
        print(f"{len(rows) - len(failed):,} of {len(rows):,} versions verified"
              + (f"; {len(failed):,} failed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def _models_gc(args, registry) -> int:
    """Delete what no version needs and say what went."""
    result = registry.gc()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for r in result["removed"]:
        print(f"removed {r['path']} ({r['bytes']:,} bytes): {r['reason']}")
    for reason in result["skipped"]:
        print(f"skipped {reason}")
    print(f"removed {result['files']:,} file{'s' if result['files'] != 1 else ''} ({result['bytes']:,} bytes)")
    return 0


def _synth(args) -> int:
    from core.reading.synth import write_parquet, write_sample

    out = Path(args.out)
    if out.parent and not out.parent.exists():
        raise UsageError(f"folder {out.parent} does not exist")
    if out.suffix.lower() in (".parquet", ".pq"):
        write_parquet(out, n=args.n, seed=args.seed)
    else:
        write_sample(out, n=args.n, seed=args.seed)
    print(f"wrote {args.n:,} synthetic customers (seed {args.seed}) to {out}", file=sys.stderr)
    return 0


_COMMANDS = {"train": _train, "sweep": _sweep, "score": _score, "models": _models, "synth": _synth}


def _every(step, what: str, every: int = 10):
    """A ``progress(done, total, message)`` that reports every ``every``-th step and the last."""
    def report(done: int, total: int, _message: str) -> None:
        if done % every == 0 or done == total:
            step(f"{what} {done}/{total}")
    return report


def _stability(args) -> int:
    from core.versions.pipeline import fit_model, parse_features, prepare, resolve_data_path
    from core.fitting.stability import bootstrap_stability, temporal_stability

    features = parse_features(args.features)
    step = progress(args.quiet)
    prepared = prepare(resolve_data_path(args.data), progress=step)
    frame = prepared.frame
    step("fit")
    model = fit_model(prepared, k=args.k, features=features, seed=args.seed, n_init=args.n_init)
    names, sizes = _active_identity(args, model, frame)
    boot = bootstrap_stability(model.transform(frame), model.labels_, resamples=args.resamples, seed=args.seed,
                               n_init=args.refit_n_init or args.n_init, progress=_every(step, "bootstrap refit"))
    temporal = temporal_stability(frame, model, window=args.window, progress=_every(step, "snapshot", 1))
    details = temporal.to_dict()
    payload = {
        "data_source": prepared.source, "data_fingerprint": prepared.fingerprint, "n_customers": len(frame),
        "k": model.k, "features": features, "seed": args.seed,
        "segments": [{"segment": i, "name": n, "size": s} for i, (n, s) in enumerate(zip(names, sizes))],
        "bootstrap": {**boot.to_dict(), "summary": boot.summary(names)},
        "temporal": details.pop("snapshots"),
        "temporal_details": details,
    }
    means = boot.mean_jaccard
    lines = [f"{prepared.source}: {len(frame):,} customers, k={model.k}, {args.resamples:,} bootstrap resamples "
             f"({boot.to_dict()['scheme_description']}; a verdict when the 95% interval of the mean lies in one band)",
             f"{'segment':<34} {'Jaccard':>7}  {'verdict':<14} dissolved"]
    lines += [f"{i} {names[i][:32]:<32} {means[i]:>7.2f}  {boot.verdicts[i]:<14} {boot.dissolved[i]:,}/{boot.resamples:,}"
              for i in range(model.k)]
    # Share columns are headed by segment number (names as in the table above): "seg 0" ... "seg k-1".
    lines += [boot.summary(names), "",
              f"over enrolment time: {temporal.summary()}",
              f"{'':<8} {'':>9} {'':>5}  share of customers per segment",
              f"{'period':<8} {'customers':>9} {'ARI':>5}  " + " ".join(f"{f'seg {i}':>6}" for i in range(model.k))]
    lines += [f"{s.period:<8} {s.n_customers:>9,} {s.ari:>5.2f}  " + " ".join(f"{v:>6.0%}" for v in s.shares)
              for s in temporal.snapshots]
    lines.append(f"note: {temporal.note}")
    _emit(args, payload, "\n".join(lines))
    return 0


def _active_identity(args, model, frame) -> tuple[list[str], list[int]]:
    """Renumber a fit made for a measurement to follow the active version (numbers, names), as every command shows.

    Returns the fit's segment names (the version's where matched, personas for the others) and sizes.
    """
    import numpy as np

    from core.insight import profiles
    from core.fitting.matching import carry_names
    from core.versions.registry import Registry
    from core.versions.naming import segment_names
    from core.versions.training import Reference, identity

    registry = Registry(getattr(args, "models", None))
    active = registry.active_version()
    reference, new_of_ref = None, {}
    if active is not None:
        ref_model, ref_meta = registry.load(active)
        if all(f in frame for f in ref_model.features):
            reference = Reference(ref_model, active, segment_names(ref_meta, ref_model.k))
            new_of_ref, _ = identity(model, frame, reference)
    names = [p.name for p in profiles.personas(frame, model.labels_, model.k)]
    if reference is not None:
        names = carry_names(list(reference.names), new_of_ref, names)
    return names, [int(v) for v in np.bincount(model.labels_, minlength=model.k)]


def _drift(args) -> int:
    import numpy as np

    from core.insight.drift import compare_new_data
    from core.versions.pipeline import prepare
    from core.versions.registry import Registry
    from core.versions.naming import segment_names

    registry = Registry(args.models)
    version = version_or_active(registry)
    step = progress(args.quiet)
    model, meta = registry.load(version)
    trained_on = meta.get("data_path")
    if not trained_on:
        raise UsageError(f"model {version} was trained on an uploaded file that was not kept; "
                         "retrain it from a file (`python -m core train --data PATH`) to compare new data with it")
    if not Path(trained_on).exists():
        raise UsageError(f"the training file of model {version} is gone ({trained_on}); "
                         "put it back or retrain on the file you have")
    step("load training data")
    reference = prepare(trained_on)
    step("load new data")
    new = prepare(args.data)
    check_features(model, new.frame, "the new file")
    report = compare_new_data(model, reference.frame, new.frame, baseline_resamples=args.baseline_resamples,
                              progress=_every(step, "drift step", 5))
    names = segment_names(meta, model.k)
    payload = {"model_version": version, "reference_source": reference.source, "new_source": new.source,
               "reference_fingerprint": reference.fingerprint, "new_fingerprint": new.fingerprint,
               **report.to_dict()}
    for row in payload["segments"]:
        row["name"] = names[row["segment"]]
    lines = [f"{report.recommendation.upper()}: {report.reason}",
             f"model {version} trained on {reference.source} ({report.n_reference:,} customers); "
             f"new data {new.source} ({report.n_new:,} customers)",
             f"{'feature':<20} {'PSI':>6}  reading"]
    lines += [f"{r.feature:<20} {r.psi:>6.3f}  {r.band}" for r in report.features.itertuples()]
    lines.append(f"{'segment':<34} {'training':>8} {'new':>6}")
    lines += [f"{i} {names[i][:32]:<32} {r.reference_share:>8.1%} {r.new_share:>6.1%}"
              for i, r in report.segments.iterrows()]
    lines.append(f"segment mix PSI {report.share_psi:.3f}; adjusted Rand of a refit on the new data "
                 f"{report.ari_refit:.2f} (training-data refits: median {float(np.median(report.ari_baseline)):.2f})"
                 if len(report.ari_baseline) else f"adjusted Rand of a refit on the new data {report.ari_refit:.2f}")
    _emit(args, payload, "\n".join(lines))
    return 0


def _add_export_parser(msub) -> None:
    """`models export [VERSION] --sklearn DIR`: the seed's kmeans_model.pkl and scaler.pkl."""
    q = msub.add_parser(
        "export", help="write a version as the original project's scikit-learn pickles",
        description="Write kmeans_model.pkl (fitted KMeans) and scaler.pkl (fitted StandardScaler) with joblib, "
                    "as the original project did, plus features.json naming the column order. Pickle files run "
                    "code when loaded; the registry never loads them.")
    add_models(q)
    q.add_argument("version", metavar="VERSION", nargs="?", help="model version (default: the active one)")
    q.add_argument("--sklearn", required=True, metavar="DIR", help="folder to write the three files into")


def _export(args, registry) -> int:
    from core.versions.seed_export import PICKLE_WARNING, export_sklearn

    version_or_active(registry, args.version)
    model, meta = registry.load(args.version)
    out = Path(args.sklearn)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--sklearn {out} is a file, not a folder")
    paths = export_sklearn(model, out, meta=meta)
    print(PICKLE_WARNING, file=sys.stderr)
    print(f"exported model {meta['version']} ({model.k} segments, features {', '.join(model.features)}) to "
          + ", ".join(str(p) for p in paths))
    return 0


_COMMANDS.update({"stability": _stability, "drift": _drift})

from core.cli.access import COMMANDS as _ACCESS_COMMANDS, add_parsers as _add_access_parsers  # noqa: E402

_COMMANDS.update(_ACCESS_COMMANDS)

from core.cli.campaign import COMMANDS as _CAMPAIGN_COMMANDS, add_parsers as _add_campaign_parsers  # noqa: E402

_COMMANDS.update(_CAMPAIGN_COMMANDS)

from core.cli.data import COMMANDS as _DATA_COMMANDS, add_parsers as _add_data_parsers  # noqa: E402

_COMMANDS.update(_DATA_COMMANDS)

from core.cli.rules import COMMANDS as _RULES_COMMANDS, add_parsers as _add_rules_parsers  # noqa: E402

_COMMANDS.update(_RULES_COMMANDS)

from core.cli.migration import COMMANDS as _MIGRATION_COMMANDS, add_parsers as _add_migration_parsers  # noqa: E402

_COMMANDS.update(_MIGRATION_COMMANDS)
from core.cli.postgres import add_options as _add_postgres_options, run as _run_postgres  # noqa: E402
from core.cli.value import COMMANDS as _VALUE_COMMANDS, add_parsers as _add_value_parsers  # noqa: E402

_COMMANDS.update(_VALUE_COMMANDS)
from core.cli.compare import COMMANDS as _ALGORITHM_COMMANDS, add_parsers as _add_algorithm_parsers  # noqa: E402

_COMMANDS.update(_ALGORITHM_COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 2 bad input.
    """
    args = build_parser().parse_args(argv)  # --help and usage errors end here, before numpy and pandas load
    from core.engines import EngineError, EngineUnavailable
    from core.reading.loading import DataFileError
    from core.versions.registry import RegistryError

    try:
        return _run_postgres(args, _COMMANDS[args.command], main)  # database URLs; the sync table
    except (UsageError, DataFileError, RegistryError, ValueError, KeyError, EngineError, EngineUnavailable) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "), file=sys.stderr)
        return 2
