"""One HTTP round trip through the actor bridge, against the same handler without it.

Three servers run in this process, each answering GET /compute?n=.. with the same small JSON:

  plain    a bare aiohttp app; the handler computes the payload itself
  mw       the same handler inside `create_app` (every middleware of SPEC section 3)
  bridge   `create_app` + the handler's work done by a ServiceActor command via `ask`
           (real ActorSystem: pykka workers, their own loops, replies across threads)

so `mw / plain` is the middleware cost and `bridge / mw` the actor hop. The load comes from
another process: wrk when it is installed (it costs the server far less CPU), else an aiohttp
client started with multiprocessing. Variants are interleaved round by round so a noisy
neighbour hurts all three alike; the medians are reported.

    .venv/bin/python bench/bridge_roundtrip.py [--duration 5] [--warmup 1] [--rounds 3]
        [--concurrency 1,32] [--driver auto|wrk|python] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import queue
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import msgspec  # noqa: E402
from aiohttp import web  # noqa: E402

from microcommerce.actors.bus import LocalBus  # noqa: E402
from microcommerce.actors.service import ServiceActor, handles  # noqa: E402
from microcommerce.actors.system import ActorSystem  # noqa: E402
from microcommerce.config import Settings, load_settings  # noqa: E402
from microcommerce.contracts.commands import Command  # noqa: E402
from microcommerce.http.app import ask, create_app  # noqa: E402
from microcommerce.http.auth import Revocations, TokenIssuer  # noqa: E402
from microcommerce.http.body import json_response, query_value  # noqa: E402

VARIANTS = ("plain", "mw", "bridge")
COMPARISONS = (  # (label, slower variant, reference)
    ("actor hop   (bridge vs mw)", "bridge", "mw"),
    ("middlewares (mw vs plain)", "mw", "plain"),
    ("total       (bridge vs plain)", "bridge", "plain"),
)
PATH = "/compute?n=20"


class BenchFailed(Exception):
    """The benchmark could not produce a trustworthy figure; the message says why."""


# -- the handler logic, shared by all three variants ------------------------------------------
class Computed(msgspec.Struct):
    n: int
    total: int
    squares: list[int]
    even: bool


def compute(n: int) -> Computed:
    """A little real work so the payload is not a constant."""
    return Computed(n=n, total=n * (n - 1) // 2, squares=[i * i for i in range(min(n, 8))],
                    even=n % 2 == 0)


class Compute(Command, frozen=True):
    n: int


class BenchActor(ServiceActor):
    @handles(Compute)
    async def compute(self, command: Compute) -> Computed:
        return compute(command.n)


async def plain_handler(request: web.Request) -> web.Response:
    return json_response(compute(query_value(request, "n", int, 10)))


async def bridge_handler(request: web.Request) -> web.Response:
    return json_response(await ask(request, Compute(n=query_value(request, "n", int, 10))))


# -- the three servers -------------------------------------------------------------------------
def bench_settings(workers: int | None) -> Settings:
    flags: dict[str, object] = {
        "ephemeral": True, "access_log": False, "rate_limit_max": 1_000_000_000,
        "log_level": "warning",
    }
    if workers:
        flags["workers"] = workers
    return load_settings(flags, env={})


@dataclass
class Servers:
    urls: dict[str, str] = field(default_factory=dict)
    runners: list[web.AppRunner] = field(default_factory=list)
    system: ActorSystem | None = None

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        if self.system is not None:
            await self.system.stop()


async def start_servers(settings: Settings) -> Servers:
    servers = Servers()
    bus = LocalBus()
    issuer = TokenIssuer(settings.jwt_secret, settings.jwt_ttl_s, Revocations())
    system = ActorSystem("bench", settings, bus, BenchActor, None)
    await system.migrate()
    await system.start()
    servers.system = system

    plain = web.Application()
    plain.router.add_get("/compute", plain_handler)
    mw = create_app("bench", settings, issuer, bus=bus,
                    setup_routes=lambda app: app.router.add_get("/compute", plain_handler))
    bridge = create_app("bench", settings, issuer, system=system, bus=bus,
                        setup_routes=lambda app: app.router.add_get("/compute", bridge_handler))
    for name, app in zip(VARIANTS, (plain, mw, bridge), strict=True):
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        servers.runners.append(runner)
        port = runner.addresses[0][1]
        servers.urls[name] = f"http://127.0.0.1:{port}{PATH}"
    return servers


# -- load drivers (always another process) -----------------------------------------------------
@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    server_cpu_s: float = 0.0  # CPU time of this (server) process while measured, all threads

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        """Server CPU per request: steadier than req/s when other programs share the machine."""
        return self.server_cpu_s / self.requests * 1e6 if self.requests else 0.0


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_latency(text: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        raise BenchFailed(f"wrk printed no {pct}% latency:\n{text}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def run_wrk(url: str, concurrency: int, duration: float) -> Result:
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
           "--latency", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    if proc.returncode != 0:
        raise BenchFailed(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    text = proc.stdout
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if not total:
        raise BenchFailed(f"could not read wrk's output:\n{text}")
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[total.group(3)]
    errors: dict[str, int] = {}
    if bad := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors["non-2xx"] = int(bad.group(1))
    if sock := re.search(r"Socket errors: (.*)", text):
        errors["socket"] = sum(int(n) for n in re.findall(r"\d+", sock.group(1)))
    return Result(int(total.group(1)), float(total.group(2)) * unit,
                  _wrk_latency(text, "50"), _wrk_latency(text, "99"), errors)


def _client_process(url: str, concurrency: int, duration: float, out) -> None:  # noqa: ANN001
    """Child process: `concurrency` keep-alive loops for `duration` seconds."""
    import aiohttp

    async def drive() -> tuple[int, float, list[float], dict[str, int]]:
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        stop_at = time.perf_counter() + duration
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def loop() -> None:
                while (now := time.perf_counter()) < stop_at:
                    try:
                        async with session.get(url) as resp:
                            await resp.read()
                            status = resp.status
                    except aiohttp.ClientError as exc:
                        errors[type(exc).__name__] += 1
                        continue
                    latencies.append(time.perf_counter() - now)
                    if status != 200:
                        errors[str(status)] += 1

            await asyncio.gather(*(loop() for _ in range(concurrency)))
        return len(latencies), duration, latencies, dict(errors)

    out.send(asyncio.run(drive()))
    out.close()


def run_python_client(url: str, concurrency: int, duration: float) -> Result:
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_client_process, args=(url, concurrency, duration, sender))
    proc.start()
    sender.close()
    if not receiver.poll(duration + 60):
        proc.kill()
        raise BenchFailed("the load-driver process did not report back")
    count, seconds, latencies, errors = receiver.recv()
    proc.join(10)
    if not latencies:
        raise BenchFailed(f"no request completed (errors: {errors})")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Result(count, seconds, cuts[49] * 1000, cuts[98] * 1000, errors)


# -- the run ----------------------------------------------------------------------------------
def pick_driver(choice: str) -> str:
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise BenchFailed("--driver wrk: wrk is not installed (apt-get install -y wrk)")
    return choice


async def measure(servers: Servers, args: argparse.Namespace, driver: str) -> dict[int, dict[str, list[Result]]]:
    run = run_wrk if driver == "wrk" else run_python_client
    results: dict[int, dict[str, list[Result]]] = {}
    for concurrency in args.concurrency:
        per_variant = results[concurrency] = {name: [] for name in args.variants}
        for round_no in range(1, args.rounds + 1):
            for name in args.variants:
                # The driver runs in another process; this loop keeps serving meanwhile.
                url = servers.urls[name]
                if args.warmup > 0:
                    await asyncio.to_thread(run, url, concurrency, args.warmup)
                cpu_before = _process_cpu()
                result = await asyncio.to_thread(run, url, concurrency, args.duration)
                result.server_cpu_s = _process_cpu() - cpu_before
                if result.errors:
                    raise BenchFailed(f"{name} at concurrency {concurrency} had errors: {result.errors}")
                per_variant[name].append(result)
                print(f"  round {round_no}/{args.rounds}  c={concurrency:<3} {name:<7}"
                      f"{result.rps:9.0f} req/s  p50 {result.p50_ms:6.3f} ms  p99 {result.p99_ms:6.3f} ms"
                      f"  cpu {result.cpu_us:5.0f} us/req", flush=True)
    return results


@dataclass
class Summary:
    """Medians over the rounds of one variant at one concurrency."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float

    @classmethod
    def of(cls, results: list[Result]) -> Summary:
        return cls(statistics.median(r.rps for r in results), statistics.median(r.p50_ms for r in results),
                   statistics.median(r.p99_ms for r in results), statistics.median(r.cpu_us for r in results))


def overhead(slow: float, fast: float) -> str:
    """How much more `slow` costs than `fast`, in percent."""
    return f"{(slow / fast - 1) * 100:+.1f}%" if fast else "n/a"


def compare(label: str, slow: Summary, fast: Summary) -> str:
    # time per request at saturation = 1 / throughput
    return (f"      {label:<30} time/req {overhead(fast.rps, slow.rps):>8}   p50 {overhead(slow.p50_ms, fast.p50_ms):>8}"
            f"   cpu/req {overhead(slow.cpu_us, fast.cpu_us):>8}  ({slow.cpu_us - fast.cpu_us:+.0f} us)")


def report(results: dict[int, dict[str, list[Result]]]) -> None:
    print("\nmedians; overhead = how much more the slower variant costs per request")
    print(f"{'conc':>4}  {'variant':<7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/req':>11}")
    for concurrency, per_variant in results.items():
        summaries = {name: Summary.of(results) for name, results in per_variant.items()}
        for name, summary in summaries.items():
            print(f"{concurrency:>4}  {name:<7} {summary.rps:9.0f} {summary.p50_ms:8.3f} "
                  f"{summary.p99_ms:8.3f} {summary.cpu_us:11.0f}")
        for label, slow, fast in COMPARISONS:
            if slow in summaries and fast in summaries:
                print(compare(label, summaries[slow], summaries[fast]))


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    parser.add_argument("--concurrency", default="1,32", help="comma-separated levels (default 1,32)")
    parser.add_argument("--driver", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--workers", type=int, default=None, help="actor workers (default: WORKERS setting)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="subset to run (default: all three)")
    args = parser.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not args.variants or set(args.variants) - set(VARIANTS):
        parser.error(f"--variants: choose from {', '.join(VARIANTS)}")
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error("--concurrency: comma-separated positive integers, e.g. 1,32")
    if not args.concurrency or min(args.concurrency) < 1 or args.rounds < 1 or args.duration < 1:
        parser.error("--concurrency levels, --rounds and --duration must be >= 1")
    return args


async def main_async(args: argparse.Namespace) -> None:
    driver = pick_driver(args.driver)
    settings = bench_settings(args.workers)
    servers = await start_servers(settings)
    try:
        print(f"bridge round trip: {driver} driver, {settings.workers} actor workers, "
              f"{args.rounds} round(s) x {args.warmup:g}s warm-up + {args.duration:g}s, "
              f"concurrency {','.join(map(str, args.concurrency))}", flush=True)
        for name in args.variants:
            print(f"  {name:<7} {servers.urls[name]}", flush=True)
        results = await measure(servers, args, driver)
        report(results)
        print("\nfloor: a bare hand-off loop -> thread -> loop (no HTTP, no actor code) on this machine")
        for concurrency in args.concurrency:
            wall_us, cpu_us = await handoff_floor(concurrency)
            print(f"  {concurrency:>3} in flight: {wall_us:6.1f} us wall, {cpu_us:6.1f} us CPU per hand-off")
    finally:
        await servers.close()


async def handoff_floor(in_flight: int, seconds: float = 1.0) -> tuple[float, float]:
    """What any thread hop costs here (wake a thread, wake the loop back): the actor hop's floor."""
    inbox: queue.SimpleQueue[asyncio.Future[int] | None] = queue.SimpleQueue()
    loop = asyncio.get_running_loop()

    def echo() -> None:
        while (future := inbox.get()) is not None:
            loop.call_soon_threadsafe(future.set_result, 1)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    hops = 0
    stop_at = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal hops
        while time.perf_counter() < stop_at:
            future = loop.create_future()
            inbox.put(future)
            await future
            hops += 1

    cpu_before, started = _process_cpu(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(in_flight)))
    wall, cpu = time.perf_counter() - started, _process_cpu() - cpu_before
    inbox.put(None)
    thread.join(5)
    return (wall / hops * 1e6, cpu / hops * 1e6) if hops else (0.0, 0.0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(main_async(args))
    except BenchFailed as exc:
        print(f"bridge_roundtrip: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bridge_roundtrip: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
