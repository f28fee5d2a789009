#!/usr/bin/python3
"""Execute a Jupyter notebook headless with Deno's kernel and fail on any cell error.

Run with Debian's interpreter (`/usr/bin/python3`; needs apt `python3-nbclient`,
`jupyter-client`, `jupyter-nbconvert`, installed by tests/setup/ensure_deps.sh):

    /usr/bin/python3 tests/notebook_runner/run_notebook.py notebooks/01_training.ipynb \
        --output runs/executed/01_training.ipynb --deno "$(command -v deno)" --timeout 600

Why not `jupyter nbconvert --execute`: Deno's kernel has two faults (see the kit's docs):
  1. it sometimes reports `idle` before a cell's last outputs arrive, so clients that stop at
     `idle` lose outputs. Here every cell keeps reading iopub until no message has arrived for
     `--quiet-ms` after `idle`, and any message that still arrives later is routed to the cell
     that caused it (by the parent header's msg_id), never to the cell running at the time.
  2. errors thrown asynchronously (rejected promises, timer callbacks) are swallowed. A hidden
     setup request (never saved into the notebook) registers `unhandledrejection` and `error`
     listeners that record into a global list; after every cell a hidden check request waits
     `--async-wait-ms` and throws if anything was recorded, and a final check waits
     `--final-wait-ms`. The failure is attributed to the cell after which it was detected.

The kernel is registered through a kernelspec written into a temporary directory (argv mirrors
what `deno jupyter --install` writes, with the given deno binary), so nothing global is needed.
The kernel runs in the notebook's folder (as in Jupyter) with NO_COLOR=1 so saved text outputs
carry no ANSI colour codes.

The executed notebook (outputs, execution counts) is written to `--output` even when a cell
fails, so the failure can be inspected. Exit status: 0 all cells ran, 1 a cell failed (error,
asynchronous error, timeout or kernel death; stderr names the 0-based cell index in the
notebook's `cells` list and the error), 2 bad arguments/input or the kernel could not start.
"""

import argparse
import json
import os
import queue
import shutil
import sys
import tempfile
import time

try:
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
except ImportError as exc:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        "run_notebook: missing Python package (%s); run `bash tests/setup/ensure_deps.sh` "
        "(apt python3-nbclient jupyter-client jupyter-nbconvert) and use /usr/bin/python3\n" % exc
    )
    sys.exit(2)

KERNEL_NAME = "xgen-deno"
ERRORS_GLOBAL = "__xgenNotebookAsyncErrors"

# Registered once per kernel, before the first user cell. Listeners call preventDefault() so
# Deno does not also print/abort; the error is reported by the check below instead.
SETUP_CODE = """
globalThis.%(g)s = [];
globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  const r = e.reason;
  globalThis.%(g)s.push("unhandled promise rejection: " + (r?.stack ?? String(r)));
});
globalThis.addEventListener("error", (e) => {
  e.preventDefault();
  const r = e.error ?? e.message;
  globalThis.%(g)s.push("uncaught error: " + (r?.stack ?? String(r)));
});
""" % {"g": ERRORS_GLOBAL}


def check_code(wait_ms):
    """Hidden request that lets pending timers/microtasks run, then throws what was recorded."""
    return """
await new Promise((resolve) => setTimeout(resolve, %(ms)d));
if (globalThis.%(g)s?.length) {
  const errors = globalThis.%(g)s.splice(0);
  const e = new Error("asynchronous error(s) after this cell: " + errors.join("\\n"));
  e.name = "AsyncError";
  throw e;
}
""" % {"ms": int(round(wait_ms)), "g": ERRORS_GLOBAL}


class CellFailure(Exception):
    """A cell failed; `index` is the 0-based position in the notebook's cells."""

    def __init__(self, index, message):
        super().__init__(message)
        self.index = index
        self.message = message


class DenoNotebookRunner:
    """Owns one Deno kernel and executes requests with the quiet-period rule."""

    def __init__(self, deno, cwd, quiet_ms, startup_timeout):
        self.quiet_s = quiet_ms / 1000.0
        self.spec_dir = tempfile.mkdtemp(prefix="xgen-kernelspec-")
        os.makedirs(os.path.join(self.spec_dir, KERNEL_NAME))
        spec = {
            "argv": [deno, "jupyter", "--kernel", "--conn", "{connection_file}"],
            "display_name": "Deno",
            "language": "typescript",
        }
        with open(os.path.join(self.spec_dir, KERNEL_NAME, "kernel.json"), "w") as f:
            json.dump(spec, f, indent=2)
        # Only our temporary directory is searched: a global `deno` kernelspec can't interfere.
        ksm = KernelSpecManager(kernel_dirs=[self.spec_dir])
        self.km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
        self.kernel_log = tempfile.TemporaryFile(mode="w+")
        env = dict(os.environ, NO_COLOR="1")
        self.km.start_kernel(cwd=cwd, env=env, stdout=self.kernel_log, stderr=self.kernel_log)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=startup_timeout)
        except RuntimeError as exc:
            raise RuntimeError("kernel did not start: %s\n%s" % (exc, self.kernel_log_tail()))
        # msg_id -> list that receives that request's outputs (late messages included).
        self.sinks = {}
        self.pending_clear = set()

    def kernel_log_tail(self, limit=4000):
        self.kernel_log.flush()
        self.kernel_log.seek(0)
        text = self.kernel_log.read()
        return text[-limit:]

    def close(self):
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        finally:
            shutil.rmtree(self.spec_dir, ignore_errors=True)
            self.kernel_log.close()

    def _route(self, msg):
        """Turn one iopub message into a notebook output on the list of the request it answers."""
        sink = self.sinks.get(msg["parent_header"].get("msg_id"))
        if sink is None:
            return
        kind = msg["msg_type"]
        content = msg["content"]
        parent = msg["parent_header"].get("msg_id")
        if kind in ("stream", "display_data", "execute_result", "error"):
            if parent in self.pending_clear:  # clear_output(wait=True): clear on next output
                self.pending_clear.discard(parent)
                del sink[:]
            out = nbformat.v4.output_from_msg(msg)
            display_id = content.get("transient", {}).get("display_id")
            if kind == "display_data" and display_id:
                out["_display_id"] = display_id
            # Merge consecutive chunks of one stream, as Jupyter front-ends do.
            if (kind == "stream" and sink and sink[-1].get("output_type") == "stream"
                    and sink[-1].get("name") == out.get("name")):
                sink[-1]["text"] += out["text"]
            else:
                sink.append(out)
        elif kind == "clear_output":
            if content.get("wait"):
                self.pending_clear.add(parent)
            else:
                del sink[:]
        elif kind == "update_display_data":
            # Updates may target a display created by an earlier cell: search every cell.
            display_id = content.get("transient", {}).get("display_id")
            for out in (o for outputs in self.sinks.values() for o in outputs):
                if display_id and out.get("_display_id") == display_id:
                    out["data"] = content.get("data", {})
                    out["metadata"] = content.get("metadata", {})

    def execute(self, code, sink, timeout_s, silent=False):
        """Run `code`; returns the execute_reply content. Outputs are appended to `sink`.

        Waits for the reply and for `idle`, then keeps reading iopub until `quiet_s` passes
        without any message (Deno may send outputs after `idle`). Hidden (`silent`) requests
        skip the quiet period: their only output is an error, which the reply carries too.
        """
        quiet_s = 0.0 if silent else self.quiet_s
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False)
        self.sinks[msg_id] = sink
        deadline = time.monotonic() + timeout_s
        idle = False
        reply = None
        last_msg = time.monotonic()
        while True:
            now = time.monotonic()
            if idle and reply is not None and now - last_msg >= quiet_s:
                return reply
            if now >= deadline:
                raise TimeoutError("no completion within %.0f s" % timeout_s)
            if not self.km.is_alive():
                raise RuntimeError("kernel died\n" + self.kernel_log_tail())
            wait = min(0.05 if reply is None else max(quiet_s, 0.001), max(0.001, deadline - now))
            if reply is None:
                try:
                    msg = self.kc.get_shell_msg(timeout=0.001)
                    if msg["parent_header"].get("msg_id") == msg_id:
                        reply = msg["content"]
                except queue.Empty:
                    pass
            try:
                msg = self.kc.get_iopub_msg(timeout=wait)
            except queue.Empty:
                continue
            last_msg = time.monotonic()
            if (msg["msg_type"] == "status" and msg["parent_header"].get("msg_id") == msg_id
                    and msg["content"].get("execution_state") == "idle"):
                idle = True
            self._route(msg)


def error_text(reply, outputs):
    """`Name: value` from the reply, falling back to the first error output."""
    for out in outputs:
        if out.get("output_type") == "error":
            return "%s: %s" % (out.get("ename"), out.get("evalue"))
    return "%s: %s" % (reply.get("ename", "Error"), reply.get("evalue", "(no message)"))


def ensure_error_output(reply, outputs):
    """A failing reply must leave an error output even if its iopub message never came."""
    if not any(o.get("output_type") == "error" for o in outputs):
        outputs.append(nbformat.v4.new_output(
            "error",
            ename=reply.get("ename", "Error"),
            evalue=reply.get("evalue", ""),
            traceback=reply.get("traceback", []),
        ))


def execute_for_cell(runner, index, code, sink, opts, silent=False):
    """`runner.execute` with timeouts and kernel death reported as a failure of cell `index`."""
    try:
        return runner.execute(code, sink, opts.timeout, silent=silent)
    except TimeoutError as exc:
        raise CellFailure(index, "timed out (%s)" % exc)
    except RuntimeError as exc:
        raise CellFailure(index, str(exc))


def check_async_errors(runner, index, wait_ms, opts):
    """Hidden check after cell `index`; its error output is appended to that cell."""
    sink = []
    reply = execute_for_cell(runner, index, check_code(wait_ms), sink, opts, silent=True)
    return reply, sink


def run(nb, runner, opts):
    """Execute every code cell of `nb` in place; raises CellFailure on the first failing cell."""
    setup_sink = []
    reply = runner.execute(SETUP_CODE, setup_sink, opts.timeout, silent=True)
    if reply.get("status") != "ok":
        raise RuntimeError("async-error setup failed: " + error_text(reply, setup_sink))
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for n, index in enumerate(code_cells):
        cell = nb.cells[index]
        cell.outputs = []
        cell.execution_count = None
        started = time.monotonic()
        reply = execute_for_cell(runner, index, cell.source, cell.outputs, opts)
        cell.execution_count = reply.get("execution_count")
        if reply.get("status") != "ok":
            ensure_error_output(reply, cell.outputs)
            raise CellFailure(index, error_text(reply, cell.outputs))
        # The last cell gets the longer final wait: nothing later would catch its timers.
        last = n == len(code_cells) - 1
        wait_ms = max(opts.async_wait_ms, opts.final_wait_ms) if last else opts.async_wait_ms
        reply, sink = check_async_errors(runner, index, wait_ms, opts)
        if reply.get("status") != "ok":
            ensure_error_output(reply, sink)
            cell.outputs.extend(sink)
            raise CellFailure(index, error_text(reply, sink))
        if opts.verbose:
            sys.stderr.write("run_notebook: cell %d (code cell %d/%d) ok in %.2f s\n" % (
                index, n + 1, len(code_cells), time.monotonic() - started))
    return len(code_cells)


def write_atomic(nb, path):
    """Temp file + rename so a crash never leaves a half-written notebook."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".ipynb", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def strip_private_keys(nb):
    """Drop bookkeeping keys nbformat adds for display updates (not part of the schema)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            out.pop("_display_id", None)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Execute a notebook with Deno's Jupyter kernel.")
    p.add_argument("notebook", help="input .ipynb (never modified)")
    p.add_argument("--output", "-o", required=True, help="where to write the executed notebook")
    p.add_argument("--deno", default=shutil.which("deno"), help="deno binary (default: PATH)")
    p.add_argument("--timeout", type=float, default=600.0, help="per-cell timeout, seconds")
    p.add_argument("--quiet-ms", type=float, default=300,
                   help="keep reading outputs until this long without a message after idle")
    p.add_argument("--async-wait-ms", type=float, default=50,
                   help="wait after each cell before checking for asynchronous errors")
    p.add_argument("--final-wait-ms", type=float, default=500,
                   help="wait after the last cell before the final asynchronous-error check")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="kernel start, seconds")
    p.add_argument("--cwd", help="kernel working directory (default: the notebook's folder)")
    p.add_argument("--verbose", "-v", action="store_true", help="log each cell to stderr")
    opts = p.parse_args(argv)
    for name in ("timeout", "startup_timeout"):
        if not getattr(opts, name) > 0:
            p.error("--%s must be > 0, got %s" % (name.replace("_", "-"), getattr(opts, name)))
    for name in ("quiet_ms", "async_wait_ms", "final_wait_ms"):
        if getattr(opts, name) < 0:
            p.error("--%s must be >= 0, got %s" % (name.replace("_", "-"), getattr(opts, name)))
    return opts


def main(argv):
    opts = parse_args(argv)
    if not opts.deno or not os.access(opts.deno, os.X_OK):
        sys.stderr.write("run_notebook: --deno: expected an executable deno binary, got %r\n"
                         % opts.deno)
        return 2
    try:
        nb = nbformat.read(opts.notebook, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many types on malformed JSON
        sys.stderr.write("run_notebook: %s: expected a readable nbformat-4 notebook: %s\n"
                         % (opts.notebook, str(exc).splitlines()[0] if str(exc) else exc))
        return 2
    cwd = opts.cwd or os.path.dirname(os.path.abspath(opts.notebook))
    for attempt in (1, 2):
        try:
            runner = DenoNotebookRunner(opts.deno, cwd, opts.quiet_ms, opts.startup_timeout)
        except Exception as exc:  # noqa: BLE001 - any start failure is reported the same way
            sys.stderr.write("run_notebook: %s: %s\n" % (opts.notebook, exc))
            return 2
        status = 0
        started = time.monotonic()
        try:
            count = run(nb, runner, opts)
            sys.stderr.write("run_notebook: %s: %d code cell(s) ok in %.1f s\n"
                             % (opts.notebook, count, time.monotonic() - started))
        except CellFailure as exc:
            source = nb.cells[exc.index].source.strip().splitlines()
            sys.stderr.write("run_notebook: %s: cell %d failed: %s\n  first line: %s\n" % (
                opts.notebook, exc.index, exc.message, source[0][:120] if source else "(empty)"))
            status = 1
        except RuntimeError as exc:
            sys.stderr.write("run_notebook: %s: %s\n" % (opts.notebook, exc))
            status = 2
        except ValueError as exc:
            # jupyter_client rejects a message whose HMAC does not match ("Invalid Signature"):
            # a transport fault, seen rarely under heavy load, not a notebook error. The
            # kernel's state is then unknown, so the whole notebook runs again on a fresh one.
            if "Signature" not in str(exc) or attempt == 2:
                raise
            sys.stderr.write("run_notebook: %s: kernel message rejected (%s); rerunning the "
                             "notebook once with a fresh kernel\n" % (opts.notebook, exc))
            nb = nbformat.read(opts.notebook, as_version=4)
            continue
        finally:
            runner.close()
        break
    strip_private_keys(nb)
    write_atomic(nb, opts.output)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
