"""The ``zoo`` command line: list, info, fetch, predict, finetune, bench, cache, reproduce.

User errors print one line and exit 1, usage mistakes (click's) one line and exit 2;
``zoo --debug ...`` shows the traceback.
Listing never imports torch; info only to count the parameters of a card that lacks them.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Column, Table

from zoo.errors import InputError, ZooError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Domain Zoo: load, fine-tune and benchmark pretrained models.")
cache_app = typer.Typer(no_args_is_help=True, help="Inspect, verify or clear the weights cache.")
app.add_typer(cache_app, name="cache")
console = Console(width=None if sys.stdout.isatty() else 160)  # pipes and logs get whole tables
_state = {"debug": False}
_MODEL_ID = typer.Argument(..., metavar="ID", help="a registered id (zoo list), PREFIX:NAME, or a saved model folder")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"zoo (domain-zoo) {version('domain-zoo')}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Show the installed version and exit."),
):
    _state["debug"] = debug


@app.command("list")
def list_cmd(
    pattern: str = typer.Argument("*", help="fnmatch pattern over ids, e.g. 'DOMAIN/*'"),
    domain: Optional[str] = typer.Option(None, help="only this domain"),
    task: Optional[str] = typer.Option(None, help="only this task"),
    pretrained: Optional[bool] = typer.Option(None, "--pretrained/--no-pretrained", help="only models with (or without) weights"),
    datasets: bool = typer.Option(False, "--datasets", help="list registered datasets (for --data) instead"),
):
    """List registered models, or an upstream zoo's with a prefix pattern ("timm:*resnet*")."""
    from zoo.hub import info, list_models, weights_status
    from zoo.registry import get_registry

    if datasets:
        _print_datasets(pattern, domain, task)
        return
    if get_registry().source(pattern) is not None:  # upstream cards cost a model build each: names only
        for model_id in list_models(pattern):
            console.print(model_id, highlight=False)
        return
    table = Table("task", "params", "metric", "weights")
    table.columns.insert(0, Column("id", no_wrap=True))
    for model_id in list_models(pattern, domain=domain, task=task, pretrained=pretrained):
        card = info(model_id)
        metric = next((m for m in card.metrics if m.get("split") == "test"), card.metrics[0] if card.metrics else None)
        table.add_row(
            model_id,
            card.task,
            f"{card.params:,}" if card.params else "-",
            f"{metric['name']}={metric['value']:.4f} ({metric['split']})" if metric else "-",
            weights_status(model_id),
        )
    console.print(table)


def _print_datasets(pattern: str, domain: Optional[str], task: Optional[str]) -> None:
    import fnmatch

    from zoo.registry import get_registry

    table = Table("task", "description")
    table.columns.insert(0, Column("id", no_wrap=True))
    for spec in sorted(get_registry().datasets.values(), key=lambda spec: spec.id):
        if fnmatch.fnmatch(spec.id, pattern) and domain in (None, spec.domain) and task in (None, spec.task):
            table.add_row(spec.id, spec.task, spec.description or "-")
    console.print(table)


@app.command()
def info(model_id: str = _MODEL_ID, as_json: bool = typer.Option(False, "--json", help="print the whole card as JSON")):
    """Show a model's card."""
    from zoo.hub import info as card_of

    card = _with_known_facts(card_of(model_id), registered=_is_registered(model_id))
    if as_json:
        print(json.dumps(card.to_dict(), indent=2))
        return
    table = Table(show_header=False)
    shown_as = {"params": f"{card.params:,}" if card.params is not None else "-",
                "source": card.source or "- (no pretrained weights: fine-tune it first)"}
    for key in ("id", "domain", "task", "architecture", "params", "license", "source", "description"):
        value = getattr(card, key)
        table.add_row(key, shown_as.get(key, "-" if value is None else str(value)))
    labels = card.labels or []
    # Quoted, as ImageNet's labels hold commas themselves ("tench, Tinca tinca").
    shown = ", ".join(json.dumps(label, ensure_ascii=False) for label in labels[:10])
    table.add_row("labels", f"{len(labels)}: {shown}{', …' if len(labels) > 10 else ''}" if labels else "-")
    for metric in card.metrics:
        table.add_row(f"metric {metric['name']}", f"{metric['value']:.4f} on {metric['dataset']} ({metric['split']})")
    for name, meta in card.files.items():
        table.add_row(f"file {name}", f"sha256 {meta['sha256']}")
    recipe = card.provenance.get("recipe")
    if recipe:
        table.add_row("recipe", f"{recipe['name']} {json.dumps(recipe['params'])}")
    console.print(table)


def _is_registered(model_id: str) -> bool:
    """Whether ``zoo.hub.info`` describes ``model_id`` from the registry (code), not from a folder's card."""
    from zoo.card import CARD_FILE
    from zoo.registry import get_registry

    try:
        is_folder = (Path(model_id) / CARD_FILE).is_file()
    except (OSError, ValueError):
        is_folder = False
    return not is_folder and model_id in get_registry().models


def _with_known_facts(card, registered: bool):
    """``card`` with ``params`` and ``source`` filled in where it lacks them but they are known: the
    parameters of a registered model counted on its architecture built on the meta device (no memory,
    no weights; a folder's card is untrusted, so it is not built), the source from its files' sources."""
    if card.params is None and registered:
        card.params = _count_params(card.architecture, card.arch_args)
    if card.source is None:
        sources = sorted({meta["source"] for meta in card.files.values() if meta.get("source")})
        card.source = ", ".join(sources) or None
    return card


def _count_params(architecture: str, arch_args: dict) -> int:
    import torch

    from zoo.registry import get_registry, resolve_ref

    builder = resolve_ref(get_registry().architecture(architecture).builder)
    with torch.device("meta"):
        return sum(p.numel() for p in builder(**arch_args).parameters())


@app.command()
def fetch(model_id: str = _MODEL_ID):
    """Download and verify every file a model needs (run once while online)."""
    from zoo.hub import fetch as fetch_files

    for path in fetch_files(model_id, progress=True):
        console.print(f"[green]ok[/green] {path}")


@app.command()
def predict(
    model_id: str = _MODEL_ID,
    arguments: Optional[List[str]] = typer.Argument(None, metavar="INPUTS...", help="input files (images, .npy "
                                                    "arrays, ...); for tasks that take text, the text itself (a "
                                                    "sentence, a SMILES)"),
    as_json: bool = typer.Option(False, "--json", help="print predictions as JSON lines"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="classifiers: the k best labels with their "
                                        "scores (default: the best one; with --json, all the model gives)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the prediction to this file (one input), "
                                       "in the task's output format, e.g. a DICOM-SEG, or, for tasks that write "
                                       "folders, the predictions of every input into this folder"),
    draw: bool = typer.Option(False, "--draw", help="also write each input with its prediction drawn over it "
                              "into the --out folder (beside an --out file), for tasks that draw"),
    render: Optional[Path] = typer.Option(None, "--render", help="policies: instead of INPUTS, run one episode in "
                                          "the policy's environment and write it as an animated GIF here"),
    seed: int = typer.Option(0, "--seed", help="with --render: the episode's reset seed"),
):
    """Run a model on input files (or folders, e.g. a DICOM series), or on inputs given as text, and print its
    predictions.

    A file that cannot be read is reported and the others are still predicted (exit 1 at the end).
    """
    from zoo.hub import load, tasks_of

    if render is not None:
        return _render(model_id, render, seed, given=bool(arguments or out or draw or as_json or top_k))
    if not arguments:
        raise InputError("expected INPUTS to predict on (files, or text for tasks that take text); "
                         "a policy can instead --render an episode")
    if draw and out is None:
        raise InputError("--draw writes into the --out folder (or beside the --out file): give --out")
    missing = [argument for argument in arguments if not _exists(argument)]
    tasks = tasks_of(model_id) if missing else ()
    if missing and tasks is not None and not any(_takes_literal_inputs(task) for task in tasks):
        raise InputError(f"no such file or folder: {', '.join(missing)}")  # before a model is built or fetched
    model = load(model_id)
    if missing and not model.adapter.literal_inputs:
        raise InputError(f"no such file or folder: {', '.join(missing)}")
    inputs = [Path(argument) if _exists(argument) else argument for argument in arguments]
    to_folder = out is not None and _output_is_folder(model.adapter, out, inputs, draw)
    read, failed = _read_inputs(model.adapter, inputs)
    predictions = model.predict([raw for _, raw in read]) if read else []
    if out is not None:
        _write_outputs(model.adapter, read, predictions, out, to_folder, draw)
        if failed:
            raise typer.Exit(1)
        return
    for (name, _), prediction in zip(read, predictions):
        if as_json:
            print(json.dumps({"input": str(name), **_as_json(prediction, top_k)}, default=_plain))
        else:
            console.print(f"{name}: {model.adapter.describe(prediction, top_k=top_k or 1)}", highlight=False)
    if failed:
        raise typer.Exit(1)


def _render(model_id: str, path: Path, seed: int, given: bool) -> None:
    """``zoo predict POLICY --render out.gif``: one episode in the policy's environment, as a GIF."""
    from zoo.hub import load

    if given:
        raise InputError("--render rolls the policy out in its own environment: give no INPUTS, --out, --draw, "
                         "--json or --top-k with it")
    model = load(model_id)
    if not hasattr(model, "render"):
        raise InputError(f"--render needs a policy (task control), got {model_id} of task {model.card.task!r}")
    rollout = model.render(path, seed=seed)
    console.print(f"{rollout.env_id}, seed {seed}: return {rollout.returns[0]:.1f} in {rollout.lengths[0]} steps; "
                  f"written to [bold]{path}[/bold]", highlight=False)


def _takes_literal_inputs(task: str) -> bool:
    """Whether a task's inputs may be arguments themselves (a sentence, a SMILES), not only files."""
    from zoo.registry import get_registry, resolve_ref

    return bool(resolve_ref(get_registry().task(task).adapter).literal_inputs)


def _exists(argument: str) -> bool:
    try:
        return Path(argument).exists()
    except (OSError, ValueError):  # a name too long for a path, or one with a NUL: no file
        return False


def _output_is_folder(adapter, out: Path, inputs: list, draw: bool) -> bool:
    """Whether ``--out`` names a folder (else one file); checked before any prediction is made.
    ``inputs``: paths, and the arguments that are inputs themselves (strings, ``adapter.literal_inputs``)."""
    suffixes = adapter.output_suffixes
    if not suffixes:
        raise InputError(f"task {adapter.card.task!r} does not write predictions to files; drop --out to print them")
    if draw and adapter.draw_suffix is None:
        raise InputError(f"task {adapter.card.task!r} does not draw its predictions; drop --draw")
    is_file = out.name.endswith(tuple(suffixes)) and not out.is_dir()
    if not is_file and not adapter.writes_folders:
        raise InputError(f"--out: expected a file ending in one of {', '.join(suffixes)}, got {out.name}")
    if is_file and len(inputs) != 1:
        folder = ", or a folder" if adapter.writes_folders else ""
        raise InputError(f"--out {out.name} writes one prediction: give one input{folder}, got {len(inputs)}")
    where = out.resolve()
    files = [path for path in inputs if isinstance(path, Path)]
    if any((path.resolve() if is_file else path.resolve().parent) == where for path in files):
        raise InputError(f"--out {out}: the inputs are there, and the predictions could overwrite them; "
                         "write them elsewhere")
    stems = [path.stem for path in files]
    clashing = sorted({stem for stem in stems if stems.count(stem) > 1})
    if (draw or not is_file) and clashing:  # one output file per input stem
        raise InputError(f"--out: inputs with the same name would write the same file: {', '.join(clashing)}")
    return not is_file


def _write_outputs(adapter, read: list, predictions: list, out: Path, to_folder: bool, draw: bool) -> None:
    """``zoo predict --out [--draw]``: the task's files, and the inputs with their predictions drawn."""
    sources = [path for path, _ in read]
    if to_folder:
        written = adapter.write_folder(predictions, out, sources=sources)
    else:
        written = [adapter.write(predictions[0], out, source=sources[0])] if read else []
    if draw:
        folder = out if to_folder else out.parent
        folder.mkdir(parents=True, exist_ok=True)
        written += [adapter.draw(raw, prediction, folder / f"{path.stem}{adapter.draw_suffix}")
                    for (path, raw), prediction in zip(read, predictions)]
    for path in written:
        console.print(f"written to [bold]{path}[/bold]", highlight=False)


def _read_inputs(adapter, inputs: list) -> tuple[list, list]:
    """``(input, raw input)`` for each readable file, or argument that is the input itself (a string,
    ``adapter.literal_inputs``); a single bad input raises, a bad one of several is reported."""
    def raw_input(item):
        return item if isinstance(item, str) else adapter.read(item)

    if len(inputs) == 1:
        return [(inputs[0], raw_input(inputs[0]))], []
    read, failed = [], []
    for item in inputs:
        try:
            read.append((item, raw_input(item)))
        except ZooError as exc:
            failed.append(item)
            named = str(exc) if str(item) in str(exc) else f"{item}: {exc}"
            Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {named}", highlight=False)
    return read, failed


def _plain(value):
    """Arrays and numpy scalars inside a prediction (a mask) as JSON lists and numbers."""
    import numpy as np

    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _as_json(prediction, top_k: int | None) -> dict:
    if isinstance(prediction, dict):
        return {**prediction, "top_k": prediction["top_k"][:top_k]} if top_k and "top_k" in prediction else prediction
    import numpy as np

    return {"output": np.asarray(prediction).tolist()}


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def finetune(
    ctx: typer.Context,
    model_id: Optional[str] = typer.Argument(None, metavar="[ID]", help="a registered id (zoo list), PREFIX:NAME, "
                                             "or a saved model folder; without one, --task says what to train"),
    data: Optional[str] = typer.Option(None, "--data", help="dataset id or a path to your data"),
    task: Optional[str] = typer.Option(None, "--task", help="without an ID: train this task's default model "
                                       "with its recipe (e.g. object-detection)"),
    out: Path = typer.Option(Path("runs/finetune"), "--out", help="output directory (a loadable model)"),
    epochs: Optional[int] = typer.Option(None, help="number of epochs"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of recipe fields"),
    set_: List[str] = typer.Option([], "--set", help="recipe field override key=value, e.g. train.lr=3e-4 (repeatable)"),
    keep_checkpoints: Optional[int] = typer.Option(
        None, "--keep-checkpoints", min=1, metavar="N",
        help="training checkpoints to keep in OUT/checkpoints, newest first (default 1: all an exact --resume needs; "
             "each holds the weights and optimizer state, about 3x the model's size with AdamW)"),
    resume: bool = typer.Option(False, "--resume", help="continue a run: `--resume` from the latest checkpoint in "
                                "--out, `--resume PATH` from that checkpoint (e.g. OUT/checkpoints/step-00000800)"),
    scratch: bool = typer.Option(False, "--scratch", help="start from random weights instead of the pretrained ones"),
    recipe_name: Optional[str] = typer.Option(None, "--recipe", help="recipe to run (default: the one that trained the model, with its settings, else the task's)"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="processes on this machine, trained with DDP "
                              "(gloo on CPU, NCCL on GPU); for several machines start `torchrun ... -m zoo finetune`"),
):
    """Fine-tune a model on a dataset; writes a loadable model to --out.

    A recipe adds options of its own for its fields (its `cli_options`, e.g. --text-column); --set sets any field.

    --out then holds the model (card.json, weights.safetensors: the best epoch's weights), metrics.jsonl, best/ (the best weights so far, for a resumed run) and checkpoints/ (the newest --keep-checkpoints training states, to --resume from).
    """
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        raise typer.Exit(_torchrun(nproc))
    from zoo.hub import info as card_of
    from zoo.recipes import finetune_recipe_class, parse_cli_options, parse_set, read_config, task_recipe_class

    if model_id is None:  # the task's recipe with its own default model
        recipe_cls, recorded, start = task_recipe_class(task, recipe_name), {}, {}
    else:
        (recipe_cls, recorded), start = finetune_recipe_class(card_of(model_id), recipe_name), {"model": model_id}
    try:
        recipe_options, positional = parse_cli_options(recipe_cls, ctx.args)
    except InputError as exc:  # a mistyped option: a usage error, as click's own
        raise _click_class("UsageError")(str(exc), ctx=ctx) from None
    checkpoint = _resume_path(positional, resume, model_id or f"--task {task}")
    overrides = {**start, "pretrained": not scratch, **recipe_options, **parse_set(set_)}
    # Shorthands for recipe fields (train.epochs on a Trainer recipe), set only when given (a recipe
    # without such a field says so).
    for field, value in (("data", data), ("epochs", epochs), ("keep_checkpoints", keep_checkpoints)):
        if value is not None:
            overrides[recipe_cls.field_key(field)] = value
    recipe = recipe_cls.from_overrides(recorded, read_config(config), overrides)
    try:
        result = recipe.run(out, resume=checkpoint or resume, progress=True)
    finally:
        from backends.distributed import leave_process_group

        leave_process_group()
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return
    _print_metrics(result.metrics)
    console.print(f"model written to [bold]{result.out_dir}[/bold]; load it with zoo.load({str(result.out_dir)!r})")


@app.command()
def bench(
    suite: str = typer.Argument(..., help="a suite's name (an unknown one lists those installed)"),
    quick: bool = typer.Option(False, "--quick", help="fewer timing samples"),
    out: Optional[Path] = typer.Option(None, "--out", help="results directory (default bench-results/SUITE)"),
    backends: str = typer.Option("torch", "--backends", help="comma-separated: torch,torch-compile,onnxruntime"),
):
    """Run a benchmark suite; writes results.jsonl, leaderboard.md and plot.png."""
    from zoo.bench import print_leaderboard, run_suite

    out = out or Path("bench-results") / suite
    names = [name.strip() for name in backends.split(",") if name.strip()]
    rows = run_suite(suite, quick=quick, out_dir=out, progress=True, backends=names)
    print_leaderboard(rows, console=console)
    console.print(f"results in [bold]{out}[/bold]: results.jsonl, leaderboard.md, plot.png")
    if any(row["status"] != "ok" for row in rows):
        raise ZooError(f"{sum(row['status'] != 'ok' for row in rows)} task(s) failed; see {out / 'leaderboard.md'}")


@app.command()
def export(
    model_id: str = _MODEL_ID,
    out: Path = typer.Option(..., "--out", help="bundle directory to write"),
    format: str = typer.Option("onnx", "--format", help="bundle format (onnx)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a non-empty --out"),
    quantize: Optional[str] = typer.Option(
        None, "--quantize", help="int8: dynamic int8 quantization for transformer encoders and MLP policies, "
        "static QDQ (calibrated on the model's own training data) for CNNs; its quality measured on a real "
        "labelled set and recorded in parity.json"),
    allow_quality_loss: bool = typer.Option(
        False, "--allow-quality-loss", help="write the int8 bundle even when it loses more than the model's tolerance"),
    calibration: Optional[str] = typer.Option(
        None, "--calibration", help="static int8: calibrate on this dataset (id, image folder or .csv; its train "
        "split) instead of the one the model was trained on"),
):
    """Export a model as a bundle that zoo.runtime runs with numpy + onnxruntime only (no torch)."""
    import json as json_

    from zoo.export import export as export_bundle
    from zoo.quantize import quality_summary
    from zoo.runtime import recorded_digest

    written = export_bundle(model_id, out, format=format, overwrite=overwrite, quantize=quantize,
                            allow_quality_loss=allow_quality_loss, calibration=calibration)
    parity = json_.loads((written / "parity.json").read_text(encoding="utf-8"))
    console.print(f"{model_id} exported to [bold]{written}[/bold]; parity with eager torch: "
                  f"max abs diff {parity['max_abs_diff']:.2e} (passed)")
    if "quality" in parity:
        console.print(quality_summary(model_id, parity["quality"]), highlight=False, soft_wrap=True)
    console.print(f"bundle sha256 (pin it where you load the bundle): {recorded_digest(written)}", highlight=False)
    console.print(f"run it without torch: from zoo.runtime import load_bundle; "
                  f"load_bundle({str(written)!r}, sha256={recorded_digest(written)!r}).predict(...)",
                  highlight=False, soft_wrap=True)


@app.command()
def reproduce(
    model_id: str = _MODEL_ID,
    out: Path = typer.Option(None, "--out", help="where to write the retrained model (default runs/reproduce/ID)"),
):
    """Retrain a model from its card's recipe and compare the metrics with the card (exit 1 if they differ)."""
    from zoo.recipes import reproduce as run_reproduce

    out = out or Path("runs/reproduce") / model_id.replace("/", "__")
    found = run_reproduce(model_id, out)
    table = Table("metric", "split", "card", "reproduced", "diff", "accepted", "match")
    for row in found.rows:
        low, high = row["accepted"]
        table.add_row(row["metric"], row["split"], f"{row['card']:.4f}", f"{row['reproduced']:.4f}",
                      f"{row['diff']:+.4f}", f"[{low:.4f}, {high:.4f}]", "yes" if row["ok"] else "NO")
    console.print(table)
    if found.identical:
        console.print(f"weights: byte-identical to the card's (sha256 {found.weights[:16]}…)", highlight=False)
    elif found.card_weights and found.weights:
        console.print(f"weights: differ from the card's ({found.weights[:16]}… vs {found.card_weights[:16]}…), as they "
                      f"do when torch, the CPU or the thread count differ; the metrics decide", highlight=False)
    differ = [f"{row['metric']} ({row['split']}) by {row['diff']:+.4f}" for row in found.rows if not row["ok"]]
    if differ:
        console.print(f"differs from the card: {', '.join(differ)}", highlight=False)
        raise typer.Exit(1)
    console.print(f"reproduced: all {len(found.rows)} card metrics match within their accepted range", highlight=False)


@cache_app.command("ls")
def cache_ls():
    """List cached files."""
    from zoo import cache

    table = Table("sha256", "size", "file", "models")
    for entry in cache.list_entries():
        names = sorted({ref["name"] for ref in entry["refs"]}) or [Path(entry["path"]).name]
        models = sorted({ref["model_id"] for ref in entry["refs"] if ref.get("model_id")})
        table.add_row(entry["sha256"][:16], f"{entry['size']:,}", ", ".join(names), ", ".join(models) or "-")
    console.print(table)
    console.print(f"cache: {cache.zoo_home()}")


@cache_app.command("verify")
def cache_verify():
    """Rehash every cached file; corrupt ones are moved aside."""
    from zoo import cache

    rows = cache.verify()
    bad = [row for row in rows if not row["ok"]]
    for row in bad:
        console.print(f"[red]corrupt[/red] {row['path']}: expected {row['sha256']}, got {row['actual']} (moved to quarantine)")
    console.print(f"{len(rows) - len(bad)} ok, {len(bad)} corrupt")
    if bad:
        raise typer.Exit(1)


@cache_app.command("clear")
def cache_clear(yes: bool = typer.Option(False, "--yes", help="do not ask")):
    """Delete every cached file."""
    from zoo import cache

    if not yes and not typer.confirm(f"delete the cache at {cache.zoo_home()}?"):
        raise typer.Exit(1)
    console.print(f"freed {cache.clear():,} bytes")


def _resume_path(positional: list[str], resume: bool, model_id: str) -> str | None:
    """The PATH of ``--resume PATH`` (click hands it over as a stray argument), or None."""
    if len(positional) > 1 or positional and not resume:
        raise InputError(f"unexpected argument {positional[-1]!r}: a checkpoint path goes after --resume, "
                         f"e.g. `zoo finetune {model_id} --resume {positional[-1]}`")
    return positional[0] if positional else None


def _torchrun(nproc: int) -> int:
    """Run this same ``zoo finetune`` command under ``torchrun --standalone`` with ``nproc`` processes."""
    import subprocess

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg.startswith("--nproc="):
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "zoo", *args]
    return subprocess.call(command)


def _print_metrics(metrics: list[dict]) -> None:
    table = Table("metric", "split", "value")
    for metric in metrics:
        table.add_row(metric["name"], metric["split"], f"{metric['value']:.4f}")
    console.print(table)


def main() -> None:
    """Console-script entry: one clear line per user error, tracebacks with --debug."""
    try:
        exit_code = app(standalone_mode=False)  # click returns typer.Exit's code in this mode
    except (ZooError, FileNotFoundError, KeyError) as exc:
        if _state["debug"]:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", highlight=False)
        sys.exit(1)
    except typer.Abort:
        sys.exit(1)
    except _click_class("ClickException") as exc:  # usage errors: a typo, a missing argument, a bad value
        if _state["debug"]:
            raise
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] {exc.format_message()} (see {_command_path(exc)} --help)", highlight=False)
        sys.exit(exc.exit_code)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)


def _command_path(exc: Exception) -> str:
    """``zoo predict`` for an error in that command's arguments, else ``zoo``."""
    ctx = getattr(exc, "ctx", None)
    return ctx.command_path if ctx is not None and ctx.command_path else "zoo"


def _click_class(name: str) -> type[Exception]:
    """click's exception class ``name`` as this typer raises it (typer 0.29 vendors its own click)."""
    return next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == name)
