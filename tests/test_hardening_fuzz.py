"""Re-entrancy fuzzer: hostile programs run on both engines, in a child process, must agree and never crash.

A program (drawn by Hypothesis, a plain list of steps) builds graphs on six named slots with every
op, drops names, collects, runs backward() and no_grad(), calls micrograd.nn layers (the fused
_layer/_rows kernels) and micrograd.optim steps, re-runs __init__ on live Values, and brings in
Python code that runs in the middle of engine calls:

- deterministic hostility: numbers registered as numbers.Real whose __float__ runs a payload
  (re-initialise a Value, build on the slots, drop a name, empty the layer's input list, call the
  same layer again, replace a weight, run backward(), gc.collect(), raise, or os.kill(SIGUSR1) to
  run a signal handler), and gradient hooks (_backward on a Value) that run one in backward().
  These run at points both engines define alike (each conversion, each rule), so the payload's
  effect is part of the program;
- ambient hostility: weakref callbacks, a __del__ on an attribute object or on a Value subclass,
  gc.callbacks hooks and a SIGALRM timer (signal.setitimer), each running a payload. When these
  fire is not defined (the engines free handles and allocate at different moments), so a
  program whose ambient payloads touch the slots is checked for crashes and for the checks below
  only; an ambient payload that only builds and backprops a private graph is allowed in a
  compared program (it must not disturb the outer one).

Each example runs on the compiled engine and on the pure one, each with its own copy of nn and
optim bound to that engine. Compared, for programs whose hostility is all deterministic: after
every step, the data and grad bits (one nan) of every slot and the step's exception type; at the
end every slot's _op and its children's data, the models' parameters and the hooks' log. Checked
on both engines for every program: no SystemError (raised or unraisable), every private graph's
backward() gives its known grads (a nested pass must work or raise RuntimeError), the arena's live
node count returns to where it was once everything is dropped, and a fixed graph still computes
right afterwards. A crash kills only the child: the parent prints the program it was running.

Known bugs are kept out by MICROGRAD_FUZZ_EXCLUDE (default: KNOWN_FAILING below, the open
xfails of tests/test_hardening_reentry.py): a comma-separated list of hostile action classes,
each `context:action` (`float:reinit`), a whole `context` (`alarm`) or an `action` anywhere
(`reinit`); contexts are float, hook, weakref, del, gc, alarm and step; actions are in ACTIONS
(step:reinit is the __init__ re-run step, step:clear... are not steps). Set it to "" to fuzz
everything. MICROGRAD_FUZZ_EXAMPLES (default 4000, split over two child processes) scales the run;
MICROGRAD_FUZZ_SEED picks the programs (default fixed, so CI is repeatable).

    python tests/test_hardening_fuzz.py run N SEED         # N examples in this process
    python tests/test_hardening_fuzz.py replay FILE        # one program (repr) from FILE, traced
    python tests/test_hardening_fuzz.py shrink FILE        # delta-debug a crashing program
"""
from __future__ import annotations

import gc
import importlib.util
import math
import numbers
import os
import random
import signal
import subprocess
import sys
import tempfile
import weakref

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- which hostile actions are drawn ---------------------------------------------------------

ACTIONS = ("reinit", "build", "drop", "clear", "relayer", "reweight", "backward", "collect",
           "raise", "kill", "private")
CONTEXTS = {
    "float": ACTIONS,
    # a gradient hook: raising or a nested backward on the slots are defined too
    "hook": ("reinit", "build", "drop", "relayer", "reweight", "collect", "raise", "kill",
             "private"),
    "weakref": ("reinit", "build", "drop", "relayer", "reweight", "backward", "private"),
    "del": ("reinit", "build", "drop", "relayer", "reweight", "backward", "private"),
    "gc": ("reinit", "build", "drop", "relayer", "reweight", "backward", "private"),
    "alarm": ("reinit", "build", "drop", "relayer", "reweight", "backward", "private"),
}
AMBIENT = ("weakref", "del", "gc", "alarm")

# The classes that still fail on main (see tests/test_hardening_reentry.py); remove one from
# here (or set MICROGRAD_FUZZ_EXCLUDE) once its xfail turns into an XPASS.
KNOWN_FAILING = "float:reinit"


def _excluded() -> set:
    raw = os.environ.get("MICROGRAD_FUZZ_EXCLUDE", KNOWN_FAILING)
    return {w.strip() for w in raw.split(",") if w.strip()}


EXCLUDE = _excluded()


def allowed(ctx: str, action: str) -> bool:
    return not ({ctx, action, f"{ctx}:{action}"} & EXCLUDE)


def fbits(x: float) -> str:
    return "nan" if x != x else float.hex(x)


# ---- the engines, each with its own nn and optim ------------------------------------------------

def _bound(E):
    """micrograd.nn and micrograd.optim loaded afresh with E as their engine."""
    import micrograd.engine as ENG
    saved = ENG.Value, ENG._impl
    ENG.Value, ENG._impl = E.Value, E
    try:
        mods = []
        for name in ("nn", "optim"):
            spec = importlib.util.find_spec(f"micrograd.{name}")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            mods.append(mod)
    finally:
        ENG.Value, ENG._impl = saved
    return mods


BINOPS = ("+", "-", "*", "/", "**")
UNOPS = ("relu", "tanh", "exp", "log", "sigmoid", "sqrt", "neg")
EXPONENTS = (2, 3, -1, -2, 0, 1, 0.5, 1.5, 2.0, -0.5)
NSLOT = 6


def binop(op, x, y):
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        return x / y
    return x ** y


CURRENT = [None]  # the Run whose hostility is armed (signal handlers and __del__ look here)


class Hostile:
    """A real number whose __float__ runs a payload (a few times), then gives its value."""

    def __init__(self, run, payload, value, shots):
        self.run, self.payload, self.value, self.shots = run, payload, value, shots

    def __float__(self):
        if self.shots > 0:
            self.shots -= 1
            self.run.fire("float", self.payload)
        return self.value

    def __repr__(self):  # the _op text of v ** H: the same on both engines
        return "H"

    __str__ = __repr__


numbers.Real.register(Hostile)


class Bomb:
    """An attribute whose __del__ runs a payload (its Value's state died)."""

    def __init__(self, run, payload):
        self.run, self.payload = run, payload

    def __del__(self):
        self.run.fire("del", self.payload)


def _subclass(E):
    class Sub(E.Value):
        def __del__(self):
            run = CURRENT[0]
            if run is not None and run.E is E:
                run.fire("del", run.sub_payload)
    return Sub


def _private_graph(V):
    p, q = V(0.75), V(-1.25)
    r = ((p * q + p ** 2).tanh() + (q * 0.5).exp()) * p
    r.backward()
    return fbits(r.data), fbits(p.grad), fbits(q.grad)


def _sane(V):
    a, b = V(1.5), V(-0.5)
    c = (a * b + a ** 2 - b / a).tanh() + (a * 0.3).exp() - a.log() + b.relu() + b.sigmoid()
    c.backward()
    return fbits(c.data), fbits(a.grad), fbits(b.grad)


class Engine:
    """One engine and what the programs need of it, made once per process."""

    def __init__(self, E):
        self.E = E
        self.nn, self.optim = _bound(E)
        self.Sub = _subclass(E)
        self.private = _private_graph(E.Value)
        self.sane = _sane(E.Value)


class Run:
    """One program on one engine: the slots, the models, and what was observed."""

    def __init__(self, eng: Engine, prog: dict, exact: bool, trace: bool = False):
        self.eng, self.E, self.V = eng, eng.E, eng.E.Value
        self.prog, self.exact, self.tracing = prog, exact, trace
        self.S = [None] * NSLOT
        self.obs = []        # compared: one entry a step, then the end state
        self.problems = []   # bugs on this engine alone, whatever the other one does
        self.hooklog = []
        self.armed = False
        self.depth = 0       # payloads running inside payloads
        self.bw = 0          # backward() calls running
        self.cur_list = None  # the input list of the layer call under way
        self.keep = []       # weakrefs, hostile numbers: alive for the whole program
        self.sub_payload = ()
        self.gc_hooks = []

    # -- payloads ---------------------------------------------------------------------------

    def fire(self, ctx, payload):
        if not self.armed or self.depth >= 2:
            return
        self.depth += 1
        try:
            if ctx in AMBIENT:
                try:
                    for act in payload:
                        self.act(ctx, act)
                except Exception as e:  # noqa: BLE001 - anything but an engine bug is fine here
                    if isinstance(e, SystemError):
                        self.problems.append(f"{ctx} payload raised SystemError: {e!r}")
            else:
                for act in payload:
                    self.act(ctx, act)
        finally:
            self.depth -= 1

    def act(self, ctx, act):
        kind = act[0]
        S = self.S
        if kind == "reinit":
            _, i, x, kids = act
            v = S[i]
            if v is not None:
                a, b = S[(i + 1) % NSLOT], S[(i + 2) % NSLOT]
                if kids and a is not None and b is not None:
                    v.__init__(x, (a, b), "r")
                else:
                    v.__init__(x)
        elif kind == "build":
            _, dst, op, i, j = act
            if S[i] is not None and S[j] is not None:
                S[dst] = binop(op, S[i], S[j])
        elif kind == "drop":
            S[act[1]] = None
        elif kind == "clear":
            if self.cur_list is not None:
                self.cur_list.clear()
        elif kind == "relayer":
            _, m, dst = act
            model, nin = self.models[m % len(self.models)]
            out = model([0.5] * nin)
            if isinstance(out, list):  # a layer of several neurons (or MLP(n, []) giving x back)
                out = out[0] if out and not isinstance(out[0], float) else None
            S[dst] = out
        elif kind == "reweight":
            _, m, j, i, x, opnode = act
            model, _nin = self.models[m % len(self.models)]
            layer = model.layers[0] if hasattr(model, "layers") and model.layers else model
            neurons = getattr(layer, "neurons", [layer])
            if neurons and neurons[j % len(neurons)].w:
                w = neurons[j % len(neurons)].w
                w[i % len(w)] = self.V(x) * 1.5 if opnode else self.V(x)
        elif kind == "backward":
            v = S[act[1]]
            if self.bw and ctx not in AMBIENT:
                self.check_private()  # a nested pass over the slots: see CONTEXTS
            elif v is not None:
                self.backward(v)
        elif kind == "collect":
            gc.collect()
        elif kind == "raise":
            raise ValueError("hostile")
        elif kind == "kill":
            os.kill(os.getpid(), signal.SIGUSR1)
        elif kind == "private":
            self.check_private()

    def check_private(self):
        try:
            got = _private_graph(self.V)
        except RuntimeError:  # a nested backward() may refuse, clearly
            return
        if not self.E.is_grad_enabled():  # inside no_grad(): no graph, only the data is defined
            got = got[0]
            if got != self.eng.private[0]:
                self.problems.append(f"a private graph inside no_grad() gave {got}, want {self.eng.private[0]}")
        elif got != self.eng.private:
            self.problems.append(f"a private graph's backward() inside the program gave {got}, "
                                 f"want {self.eng.private}")

    def backward(self, v):
        self.bw += 1
        try:
            v.backward()
        finally:
            self.bw -= 1

    # -- numbers ----------------------------------------------------------------------------

    def num(self, spec):
        kind, x = spec
        if kind == "h":
            hs = self.hostiles
            return hs[x % len(hs)] if hs else 1.0
        return x

    # -- steps ------------------------------------------------------------------------------

    def setup(self):
        random.seed(self.prog["seed"])
        nn, optim = self.eng.nn, self.eng.optim
        self.models, self.opts = [], []
        for kind, nin, sizes, act, opt in self.prog["models"]:
            if kind == "layer":
                model = nn.Layer(nin, sizes[0], activation=act)
            elif kind == "neuron":
                model = nn.Neuron(nin, activation=act)
            else:
                model = nn.MLP(nin, list(sizes), activation=act)
            self.models.append((model, nin))
            params = model.parameters()
            if not params:
                self.opts.append(None)
            elif opt == "sgd":
                self.opts.append(optim.SGD(params, lr=0.1, momentum=0.9))
            else:
                self.opts.append(optim.Adam(params, lr=0.05))
        self.hostiles = [Hostile(self, payload, value, shots)
                         for payload, value, shots in self.prog["hostiles"]]

    def step(self, st):
        kind, ng = st[0], st[-1]
        if ng is True:
            with self.E.no_grad():
                self._step(kind, st)
        else:
            self._step(kind, st)

    def _step(self, kind, st):
        S, V = self.S, self.V
        if kind == "leaf":
            S[st[1]] = V(self.num(st[2]))
        elif kind == "bin":
            _, op, dst, i, j, _ng = st
            if S[i] is not None and S[j] is not None:
                S[dst] = binop(op, S[i], S[j])
        elif kind == "num":
            _, op, dst, i, x, left, _ng = st
            if S[i] is not None:
                S[dst] = binop(op, self.num(x), S[i]) if left else binop(op, S[i], self.num(x))
        elif kind == "pow":
            _, dst, i, k, _ng = st
            if S[i] is not None:
                S[dst] = S[i] ** (self.num(k) if isinstance(k, tuple) else k)
        elif kind == "un":
            _, name, dst, i, _ng = st
            if S[i] is not None:
                S[dst] = -S[i] if name == "neg" else getattr(S[i], name)()
        elif kind == "local":
            _, dst, kids, data, grads, kw, _ng = st
            pairs = [(S[i], self.num(g)) for i, g in zip(kids, grads) if S[i] is not None]
            ch, lg = [c for c, _ in pairs], [g for _, g in pairs]
            if kw:
                S[dst] = V(self.num(data), children=ch, local_grads=lg)
            else:
                S[dst] = V(self.num(data), tuple(ch), lg)
        elif kind == "custom":
            self.custom(st)
        elif kind == "hook":
            self.hook(st)
        elif kind == "pull":
            _, dst, i, k, _ng = st
            if S[i] is not None and S[i]._children:
                kids = S[i]._children
                S[dst] = kids[k % len(kids)]
        elif kind == "drop":
            S[st[1]] = None
        elif kind == "collect":
            gc.collect()
        elif kind == "backward":
            if S[st[1]] is not None:
                self.backward(S[st[1]])
        elif kind == "set":
            _, i, attr, x, _ng = st
            if S[i] is not None:
                setattr(S[i], attr, self.num(x))
        elif kind == "reinit":
            _, i, x, kids, _ng = st
            self.act("step", ("reinit", i, self.num(x), kids))
        elif kind == "layer":
            _, m, dst, refs, _ng = st
            model, nin = self.models[m % len(self.models)]
            xs = [S[r[1]] if r[0] == "s" and S[r[1]] is not None else
                  0.25 if r[0] == "s" else self.num(r) for r in refs][:nin]
            xs += [0.5] * (nin - len(xs))
            self.cur_list = xs
            try:
                out = model(xs)
            finally:
                self.cur_list = None
            outs = out if isinstance(out, list) else [out]
            for k, o in enumerate(outs[:2]):
                S[(dst + k) % NSLOT] = o
        elif kind == "opt":
            opt = self.opts[st[1] % len(self.opts)]
            if opt is not None:
                opt.step() if st[2] else opt.zero_grad()
        elif kind == "weakref":
            _, i, payload, _ng = st
            if S[i] is not None:
                self.keep.append(weakref.ref(S[i], lambda _r, p=payload: self.fire("weakref", p)))
        elif kind == "bomb":
            _, i, payload, _ng = st
            if S[i] is not None:
                S[i].bomb = Bomb(self, payload)
        elif kind == "sub":
            _, dst, x, payload, _ng = st
            self.sub_payload = payload
            S[dst] = self.eng.Sub(x)
        elif kind == "gccb":
            _, payload, shots, threshold, _ng = st
            left = [shots]

            def hook(phase, info, payload=payload):
                if phase == "start" and left[0] > 0:
                    left[0] -= 1
                    self.fire("gc", payload)
            gc.callbacks.append(hook)
            self.gc_hooks.append(hook)
            gc.set_threshold(threshold, 5, 5)
        elif kind == "alarm":
            _, usec, payload, _ng = st
            signal.signal(signal.SIGALRM, lambda *_a, p=payload: self.fire("alarm", p))
            signal.setitimer(signal.ITIMER_REAL, usec * 1e-6, usec * 1e-6)
        else:
            raise AssertionError(f"unknown step {kind!r}")

    def custom(self, st):
        # Value(data, _children, _op) with a user _backward: each child gets coef * out.grad,
        # the coef converted there (a hostile number runs its payload inside backward());
        # cyc: the rule's closure holds a list holding out * 2 (a cycle through the engine)
        _, dst, kids, data, coefs, cyc, _ng = st
        S, V = self.S, self.V
        pairs = [(S[i], self.num(c)) for i, c in zip(kids, coefs) if S[i] is not None]
        out = V(self.num(data), tuple(c for c, _ in pairs), "fn")
        held = []

        def _backward():
            for child, c in pairs:
                child.grad += float(c) * out.grad
        out._backward = _backward
        if cyc:
            held.append(out * 2.0)
        S[dst] = held[0] if cyc == 2 else out

    def hook(self, st):
        _, i, payload, wrap, _ng = st
        v = self.S[i]
        if v is None:
            return
        log, old = self.hooklog, v._backward

        def hook():
            if wrap:
                old()  # the node's own rule, wrapped
            log.append((i, fbits(v.grad)))
            self.fire("hook", payload)
        v._backward = hook

    # -- observing --------------------------------------------------------------------------

    def look(self):
        return [(fbits(v.data), fbits(v.grad)) if v is not None else None for v in self.S]

    def end_state(self):
        out = []
        for v in self.S:
            if v is None:
                out.append(None)
            else:
                out.append((v._op, [fbits(c.data) for c in v._children]))
        params = [[(fbits(p.data), fbits(p.grad)) for p in m.parameters()] for m, _ in self.models]
        return out, params, list(self.hooklog)

    def go(self):
        """Run the program; self.obs and self.problems say what happened."""
        prev_hook = sys.unraisablehook

        def unraisable(u):
            if isinstance(u.exc_value, SystemError):
                self.problems.append(f"unraisable SystemError: {u.exc_value!r} in {u.object!r}")
        sys.unraisablehook = unraisable
        signal.signal(signal.SIGUSR1, lambda *_a: self.check_private())
        CURRENT[0] = self
        try:
            self.setup()
            self.armed = True
            for n, st in enumerate(self.prog["steps"]):
                if self.tracing:
                    print(self.E.IMPLEMENTATION, n, describe_step(st), flush=True)
                err = None
                try:
                    self.step(st)
                except Exception as e:  # noqa: BLE001 - compared between the engines
                    err = type(e).__name__
                    if isinstance(e, SystemError):
                        self.problems.append(f"step {n} raised SystemError: {e!r}")
                    del e
                if self.exact:
                    self.obs.append((n, err, self.look()))
                if not self.E.is_grad_enabled():
                    self.problems.append(f"step {n} left recording off")
            self.armed = False
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            if self.exact:
                self.obs.append(("end", self.end_state()))
        finally:
            self.armed = False
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            for h in self.gc_hooks:
                gc.callbacks.remove(h)
            gc.set_threshold(700, 10, 10)
            CURRENT[0] = None
            sys.unraisablehook = prev_hook
        return self

    def teardown(self):
        """Drop everything; the program must leave the arena as it found it."""
        self.S = [None] * NSLOT
        self.models = self.opts = self.hostiles = None
        self.keep.clear()
        self.cur_list = None


def settled_live_nodes(E, target):
    # custom ops in cycles free one level a collection: collect until the count stops falling
    last = -1
    for _ in range(50):
        now = E._live_nodes()
        if now == target or now == last:
            break
        last = now
        gc.collect()
    return E._live_nodes()


def is_exact(prog) -> bool:
    """True if every ambient payload only touches a private graph (so the slots are defined)."""
    for st in prog["steps"]:
        if st[0] in ("weakref", "bomb", "sub", "gccb", "alarm"):
            payload = st[2] if st[0] in ("weakref", "bomb", "alarm") else st[3] if st[0] == "sub" else st[1]
            if any(a[0] != "private" for a in payload):
                return False
    return True


def run_both(C: Engine, P: Engine, prog: dict, trace: bool = False):
    """Run prog on both engines; return a list of failures (empty: they agree, nothing broke)."""
    exact = is_exact(prog)
    failures = []
    results = []
    for eng in (C, P):
        gc.collect()
        base = eng.E._live_nodes()
        r = Run(eng, prog, exact, trace).go()
        obs, problems = r.obs, r.problems
        r.teardown()
        del r
        if base >= 0:
            live = settled_live_nodes(eng.E, base)
            if live != base:
                problems.append(f"live nodes {base} before the program, {live} after dropping everything")
        if _sane(eng.E.Value) != eng.sane:
            problems.append(f"a fixed graph computes {_sane(eng.E.Value)} afterwards, want {eng.sane}")
        failures += [f"[{eng.E.IMPLEMENTATION}] {p}" for p in problems]
        results.append(obs)
    if exact and results[0] != results[1]:
        oc, op = results
        for k in range(max(len(oc), len(op))):
            a = oc[k] if k < len(oc) else None
            b = op[k] if k < len(op) else None
            if a != b:
                where = describe_step(prog["steps"][a[0]]) if a and a[0] != "end" else "end"
                failures.append(f"engines differ at step {k} ({where}):\n  compiled {a}\n  pure     {b}")
                break
    return failures


# ---- reading a program ----------------------------------------------------------------------

def _n(spec):
    if isinstance(spec, tuple) and spec and spec[0] == "h":
        return f"H{spec[1]}"
    if isinstance(spec, tuple):
        return repr(spec[1])
    return repr(spec)


def describe_step(st) -> str:
    kind, ng = st[0], (" [no_grad]" if st[-1] is True else "")
    s = lambda i: f"v{i}"  # noqa: E731
    if kind == "leaf":
        t = f"{s(st[1])} = Value({_n(st[2])})"
    elif kind == "bin":
        t = f"{s(st[2])} = {s(st[3])} {st[1]} {s(st[4])}"
    elif kind == "num":
        _, op, dst, i, x, left, _ = st
        t = f"{s(dst)} = " + (f"{_n(x)} {op} {s(i)}" if left else f"{s(i)} {op} {_n(x)}")
    elif kind == "pow":
        t = f"{s(st[1])} = {s(st[2])} ** {_n(st[3])}"
    elif kind == "un":
        t = f"{s(st[2])} = " + (f"-{s(st[3])}" if st[1] == "neg" else f"{s(st[3])}.{st[1]}()")
    elif kind == "local":
        t = f"{s(st[1])} = Value({_n(st[3])}, {[s(i) for i in st[2]]}, {[_n(g) for g in st[4]]})"
    elif kind == "custom":
        t = (f"{s(st[1])} = custom op over {[s(i) for i in st[2]]} coefs {[_n(c) for c in st[4]]}"
             f" data {_n(st[3])} cyc={st[5]}")
    elif kind == "hook":
        t = f"{s(st[1])}._backward = hook(wrap={st[3]}) running {st[2]}"
    elif kind == "pull":
        t = f"{s(st[1])} = {s(st[2])}._children[{st[3]}]"
    elif kind in ("drop", "collect", "backward"):
        t = {"drop": f"del {s(st[1]) if len(st) > 1 else ''}", "collect": "gc.collect()",
             "backward": f"{s(st[1]) if len(st) > 1 else ''}.backward()"}[kind]
    elif kind == "set":
        t = f"{s(st[1])}.{st[2]} = {_n(st[3])}"
    elif kind == "reinit":
        t = f"{s(st[1])}.__init__({_n(st[2])}{', kids' if st[3] else ''})"
    elif kind == "layer":
        t = f"v{st[2]}.. = model{st[1]}({[_n(r) if r[0] != 's' else s(r[1]) for r in st[3]]})"
    elif kind == "opt":
        t = f"opt{st[1]}.{'step' if st[2] else 'zero_grad'}()"
    elif kind == "weakref":
        t = f"weakref.ref({s(st[1])}, callback running {st[2]})"
    elif kind == "bomb":
        t = f"{s(st[1])}.bomb = Bomb(__del__ running {st[2]})"
    elif kind == "sub":
        t = f"{s(st[1])} = Sub({st[2]}) (__del__ running {st[3]})"
    elif kind == "gccb":
        t = f"gc.callbacks += hook running {st[1]} x{st[2]}; gc.set_threshold({st[3]})"
    elif kind == "alarm":
        t = f"setitimer({st[1]} us), SIGALRM handler running {st[2]}"
    else:
        t = repr(st)
    return t + ng


def describe(prog) -> str:
    lines = [f"seed {prog['seed']}; models {prog['models']}"]
    for k, (payload, value, shots) in enumerate(prog["hostiles"]):
        lines.append(f"H{k}: __float__ -> {value!r}, first {shots} calls run {payload}")
    lines += [f"  {n:2}: {describe_step(st)}" for n, st in enumerate(prog["steps"])]
    return "\n".join(lines)


# ---- drawing programs (Hypothesis, in the child only) --------------------------------------

def strategies():
    from hypothesis import strategies as st

    slot = st.integers(0, NSLOT - 1)
    floats = st.one_of(st.floats(-3.0, 3.0, allow_nan=False),
                       st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, 1e300, math.inf, math.nan]))
    plain = st.one_of(floats.map(lambda x: ("f", x)), st.integers(-3, 3).map(lambda n: ("i", n)))
    hostile_ref = st.integers(0, 7).map(lambda h: ("h", h))
    num = st.one_of(plain, plain, hostile_ref)
    model_i = st.integers(0, 3)
    ng = st.sampled_from([False, False, False, True])

    act_st = {
        "reinit": st.tuples(st.just("reinit"), slot, floats, st.booleans()),
        "build": st.tuples(st.just("build"), slot, st.sampled_from(BINOPS), slot, slot),
        "drop": st.tuples(st.just("drop"), slot),
        "clear": st.just(("clear",)),
        "relayer": st.tuples(st.just("relayer"), model_i, slot),
        "reweight": st.tuples(st.just("reweight"), model_i, st.integers(0, 7), st.integers(0, 7),
                              floats, st.booleans()),
        "backward": st.tuples(st.just("backward"), slot),
        "collect": st.just(("collect",)),
        "raise": st.just(("raise",)),
        "kill": st.just(("kill",)),
        "private": st.just(("private",)),
    }

    def payloads(ctx):
        kinds = [k for k in CONTEXTS[ctx] if allowed(ctx, k)]
        if not kinds:
            return None
        one = st.one_of(*[act_st[k] for k in kinds])
        return st.lists(one, min_size=1, max_size=2).map(tuple)

    def ambient(ctx):
        p = payloads(ctx)
        if p is None:
            return None
        if "private" in [k for k in CONTEXTS[ctx] if allowed(ctx, k)]:
            return st.one_of(st.just((("private",),)), p)  # half of them keep a program compared
        return p

    steps = [
        st.tuples(st.just("leaf"), slot, num, ng),
        st.tuples(st.just("leaf"), slot, plain, ng),
        st.tuples(st.just("bin"), st.sampled_from(BINOPS), slot, slot, slot, ng),
        st.tuples(st.just("num"), st.sampled_from(BINOPS), slot, slot, num, st.booleans(), ng),
        st.tuples(st.just("pow"), slot, slot, st.one_of(st.sampled_from(EXPONENTS), hostile_ref), ng),
        st.tuples(st.just("un"), st.sampled_from(UNOPS), slot, slot, ng),
        st.tuples(st.just("local"), slot, st.lists(slot, max_size=3), num,
                  st.lists(num, min_size=3, max_size=3), st.booleans(), ng),
        st.tuples(st.just("custom"), slot, st.lists(slot, min_size=1, max_size=3), plain,
                  st.lists(num, min_size=3, max_size=3), st.sampled_from([0, 0, 1, 2]), ng),
        st.tuples(st.just("pull"), slot, slot, st.integers(0, 3), ng),
        st.tuples(st.just("drop"), slot, ng),
        st.tuples(st.just("collect"), ng),
        st.tuples(st.just("backward"), slot, ng),
        st.tuples(st.just("backward"), slot, ng),
        st.tuples(st.just("set"), slot, st.sampled_from(["data", "grad"]), num, ng),
        st.tuples(st.just("layer"), model_i, slot,
                  st.lists(st.one_of(slot.map(lambda i: ("s", i)), num), max_size=4), ng),
        st.tuples(st.just("layer"), model_i, slot,
                  st.lists(st.one_of(slot.map(lambda i: ("s", i)), num), max_size=4), ng),
        st.tuples(st.just("opt"), model_i, st.booleans(), ng),
    ]
    if allowed("step", "reinit"):
        steps.append(st.tuples(st.just("reinit"), slot, num, st.booleans(), ng))
    hook_p = payloads("hook")
    if hook_p is not None:
        steps.append(st.tuples(st.just("hook"), slot, st.one_of(st.just(()), hook_p),
                               st.booleans(), ng))
    for kind, ctx, make in [
        ("weakref", "weakref", lambda p: st.tuples(st.just("weakref"), slot, p, ng)),
        ("bomb", "del", lambda p: st.tuples(st.just("bomb"), slot, p, ng)),
        ("sub", "del", lambda p: st.tuples(st.just("sub"), slot, floats, p, ng)),
        ("gccb", "gc", lambda p: st.tuples(st.just("gccb"), p, st.integers(1, 30),
                                           st.sampled_from([1, 10, 100]), ng)),
        ("alarm", "alarm", lambda p: st.tuples(st.just("alarm"), st.sampled_from([100, 300, 1000]),
                                              p, ng)),
    ]:
        p = ambient(ctx)
        if p is not None:
            steps.append(make(p))
    step = st.one_of(*steps)

    model = st.one_of(
        st.tuples(st.just("layer"), st.integers(0, 3), st.tuples(st.integers(1, 3)),
                  st.sampled_from(["relu", "tanh", "sigmoid", "linear"]), st.sampled_from(["sgd", "adam"])),
        st.tuples(st.just("neuron"), st.integers(1, 3), st.just((1,)),
                  st.sampled_from(["relu", "tanh", "linear"]), st.sampled_from(["sgd", "adam"])),
        st.tuples(st.just("mlp"), st.integers(1, 3), st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
                  st.sampled_from(["relu", "tanh"]), st.sampled_from(["sgd", "adam"])),
    )
    float_p = payloads("float")
    hostile = (st.tuples(float_p, floats, st.sampled_from([1, 1, 2, 1000]))
               if float_p is not None else st.nothing())

    @st.composite
    def programs(draw):
        return {
            "seed": draw(st.integers(0, 2**16)),
            "models": draw(st.lists(model, min_size=1, max_size=2)),
            "hostiles": draw(st.lists(hostile, max_size=3)),
            "steps": draw(st.lists(step, max_size=25)),
        }
    return programs()


# ---- the child: run N examples ------------------------------------------------------------

def _engines():
    from conftest import load_engine
    return Engine(load_engine("compiled")), Engine(load_engine("python"))


def child_run(n: int, seed: int, lastfile: str | None) -> int:
    import faulthandler

    from hypothesis import HealthCheck, Verbosity, given, settings
    from hypothesis import seed as hseed

    faulthandler.enable()
    C, P = _engines()
    gc.collect()
    gc.freeze()  # the programs collect often: keep the process's own objects out of sight
    count = [0]
    failing = [None]

    @hseed(seed)
    @settings(max_examples=n, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
              verbosity=Verbosity.quiet)
    @given(prog=strategies())
    def fuzz(prog):
        count[0] += 1
        if lastfile:
            with open(lastfile, "w") as f:
                f.write(repr(prog))
        failures = run_both(C, P, prog)
        if failures:
            failing[0] = prog
        assert not failures, "\n".join(failures)

    try:
        fuzz()
    except AssertionError as e:
        print("FAILED after", count[0], "examples\n", str(e)[:3000], "\n\nminimal program:\n",
              describe(failing[0]), "\n\nrepr:", repr(failing[0]), flush=True)
        return 1
    print(f"ok {count[0]} examples, excluded {sorted(EXCLUDE)}", flush=True)
    return 0


def replay(prog: dict) -> list:
    C, P = _engines()
    print(describe(prog), flush=True)
    failures = run_both(C, P, prog, trace=os.environ.get("MICROGRAD_FUZZ_TRACE") == "1")
    print("\n".join(failures) or "no failure", flush=True)
    return failures


def _crashes(prog, env) -> bool:
    with tempfile.NamedTemporaryFile("w", suffix=".prog", delete=False) as f:
        f.write(repr(prog))
    try:
        r = subprocess.run([sys.executable, __file__, "replay", f.name], env=env,
                           capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(f.name)
    return r.returncode != 0


def shrink(prog: dict, still_fails=None) -> dict:
    """Drop steps, payload actions and hostile numbers while the program still crashes."""
    env = dict(os.environ)
    still_fails = still_fails or (lambda p: _crashes(p, env))
    assert still_fails(prog), "the program does not fail"
    changed = True
    while changed:
        changed = False
        for key in ("steps", "hostiles", "models"):
            k = 0
            while k < len(prog[key]):
                if key == "models" and len(prog[key]) == 1:
                    break
                cand = dict(prog, **{key: prog[key][:k] + prog[key][k + 1:]})
                if still_fails(cand):
                    prog, changed = cand, True
                else:
                    k += 1
        print("shrunk to", len(prog["steps"]), "steps", flush=True)
    return prog


# ---- the test -------------------------------------------------------------------------------

def _child_env():
    import micrograd
    root = os.path.dirname(os.path.dirname(os.path.abspath(micrograd.__file__)))
    path = [root, HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def examples() -> int:
    return int(os.environ.get("MICROGRAD_FUZZ_EXAMPLES", "4000"))


@pytest.mark.skipif(os.environ.get("MICROGRAD_NO_EXTENSIONS") == "1" or not hasattr(signal, "setitimer"),
                    reason="compares the compiled engine with the pure one (POSIX signals)")
def test_hostile_programs_agree_on_both_engines_and_never_crash():
    total = examples()
    seed = int(os.environ.get("MICROGRAD_FUZZ_SEED", "20261203"))
    env = _child_env()
    procs = []
    for k in range(2):  # two children, one a core
        last = tempfile.NamedTemporaryFile("w", suffix=".prog", delete=False)
        last.close()
        p = subprocess.Popen([sys.executable, __file__, "run", str(total // 2), str(seed + k), last.name],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append((p, last.name))
    reports = []
    try:
        for p, last in procs:
            out, err = p.communicate(timeout=1800)
            print(out.strip().splitlines()[-1] if out.strip() else "(no output)")
            if p.returncode != 0:
                msg = f"child exit {p.returncode} (negative: killed by a signal)\n{out[-6000:]}\n{err[-4000:]}"
                if p.returncode < 0 or "FAILED" not in out:
                    with open(last) as f:
                        prog = eval(f.read())  # noqa: S307 - our own repr of plain data
                    msg += f"\nthe program it was running:\n{describe(prog)}\nrepr: {prog!r}"
                reports.append(msg)
    finally:
        for p, last in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.unlink(last)
    assert not reports, "\n\n".join(reports)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    cmd = sys.argv[1]
    if cmd == "run":
        sys.exit(child_run(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None))
    with open(sys.argv[2]) as f:
        program = eval(f.read())  # noqa: S307
    if cmd == "replay":
        sys.exit(1 if replay(program) else 0)
    if cmd == "shrink":
        small = shrink(program)
        print(describe(small), "\n\nrepr:", repr(small))
