"""Run the whole pipeline on this host: ``python -m deploy.stack up``.

Starts the exporter, the enforcer, Alertmanager and Prometheus on 127.0.0.1,
wired together by configs generated into the state folder, waits until each
is healthy and runs until Ctrl-C or SIGTERM. A child that exits stops the
rest, and the command exits non-zero.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType

from deploy.config import (
    EXPORTER_JOB,
    StackConfigError,
    StackSettings,
    check_configs,
    write_configs,
    write_prometheus_config,
)
from deploy.options import build_parser, settings_from_arguments
from deploy.phase import (
    NANOSECONDS,
    DelayWindow,
    PhaseError,
    active_alertmanagers,
    enforcement_groups,
    evaluation_delay,
    evaluation_delays,
    link_aligned_rules,
    loaded_rule_files,
    wait_for_scrape,
)
from deploy.processes import (
    ProcessSpec,
    StackProcess,
    StackProcessError,
    check_port_free,
    log_tail,
)
from deploy.specs import executable, process_specs
from deploy.state_lock import StateLock
from deploy.summary import print_summary

__all__ = ["Stack", "executable", "main", "process_specs"]

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 60.0

# Prometheus' API reports when each scrape and evaluation started, a few
# milliseconds after its planned time.
DELAY_TOLERANCE_SECONDS = 0.05

# Seconds Prometheus may take to load the rule files again after SIGHUP.
RELOAD_TIMEOUT_SECONDS = 20.0


class Stack:
    """The four processes of the local stack, started and stopped together.

    Use as a context manager, so that every child is stopped on the way out.
    """

    def __init__(
        self, settings: StackSettings, specs: Sequence[ProcessSpec] | None = None
    ) -> None:
        self.settings = settings
        self.specs = list(specs) if specs is not None else process_specs(settings)
        self.processes: list[StackProcess] = []
        self._lock = StateLock(settings.state)

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Write and check the configs, then start each child and wait for it.

        Raises:
            StackConfigError: a config is invalid.
            StackProcessError: another stack has locked the state folder, a port
                is taken, or a child exited or did not become healthy in
                time; the children already started are stopped again.
        """
        self._lock.acquire()
        try:
            for spec in self.specs:
                check_port_free(spec)
            write_configs(self.settings, fresh_token=True)
            check_configs(self.settings)
            for spec in self.specs:
                log_path = self.settings.state / f"{spec.name}.log"
                process = StackProcess(spec, log_path)
                self.processes.append(process)
                process.wait_healthy(timeout)
            self.align_evaluations()
        except BaseException:
            # Stops the children started so far and frees the state folder.
            self.stop()
            raise

    @property
    def rule_files(self) -> Sequence[Path]:
        """Return the rule files as Prometheus loads them, links included."""
        return self.settings.rule_files

    def align_evaluations(self) -> None:
        """Have Prometheus evaluate the enforcement rules just after its scrapes.

        Waits for Prometheus' first scrape of the exporter, links each rule
        file under a name that puts its enforcement groups' evaluations
        right after that scrape (see deploy/phase.py), rewrites the
        Prometheus config and reloads it with SIGHUP. Does nothing when
        alignment is off, the stack runs no Prometheus or no rule requests
        enforcement.

        Raises:
            StackProcessError: Prometheus did not scrape the exporter, or
                did not load the linked rule files, in time.
        """
        prometheus = self._process("prometheus")
        settings = self.settings
        groups = self._enforcement_groups()
        if prometheus is not None and not groups:
            logger.warning(
                "no rule in %s sets an action label, so no alert asks the "
                "enforcer to act on a container",
                ", ".join(str(path) for path in settings.rule_files),
            )
        if not settings.align_evaluations or prometheus is None or not groups:
            return
        url = settings.url("prometheus")
        try:
            scraped_at = wait_for_scrape(
                url, EXPORTER_JOB, timeout=settings.scrape_interval_seconds + 10
            )
            links = link_aligned_rules(
                settings.rule_files,
                settings.state / "rules",
                scraped_at,
                settings.evaluation_interval_seconds,
            )
        except PhaseError as error:
            self._raise_if_exited(prometheus, "while the stack lined up its rules")
            raise StackProcessError(
                f"lining up rule evaluations failed: {error}"
            ) from error
        aligned = dataclasses.replace(settings, rule_files=links)
        write_prometheus_config(aligned)
        check_configs(aligned)
        prometheus.process.send_signal(signal.SIGHUP)
        self._wait_loaded(prometheus, {str(path) for path in links})
        self.settings = aligned
        for link in links:
            for name, interval in enforcement_groups(
                link, settings.evaluation_interval_seconds
            ):
                delay = evaluation_delay(str(link), name, interval, scraped_at)
                logger.info(
                    "rule group %s in %s: evaluated %.3f s after each scrape "
                    "of the exporter",
                    name,
                    link,
                    delay / NANOSECONDS,
                )

    def _wait_loaded(self, prometheus: StackProcess, files: set[str]) -> None:
        # Alerts that fire before Prometheus has found Alertmanager again
        # would wait a minute for their next send, so that is waited for too.
        deadline = time.monotonic() + RELOAD_TIMEOUT_SECONDS
        url = self.settings.url("prometheus")
        while True:
            try:
                if files <= loaded_rule_files(url) and active_alertmanagers(url):
                    return
            except PhaseError as error:
                logger.debug("rules not readable yet: %s", error)
            self._raise_if_exited(prometheus, "after SIGHUP")
            if time.monotonic() > deadline:
                raise StackProcessError(
                    f"Prometheus did not load {sorted(files)} and find its "
                    f"Alertmanager within {RELOAD_TIMEOUT_SECONDS:g} s of "
                    f"SIGHUP; last lines of "
                    f"{prometheus.log_path}:\n{log_tail(prometheus.log_path)}"
                )
            time.sleep(0.1)

    def evaluation_delays(self) -> dict[str, float]:
        """Return seconds from the exporter's latest scrape to each group's evaluation.

        Covers the enforcement groups that Prometheus has evaluated.
        """
        groups = [name for name, _ in self._enforcement_groups()]
        return evaluation_delays(self.settings.url("prometheus"), EXPORTER_JOB, groups)

    def _enforcement_groups(self) -> list[tuple[str, float]]:
        interval = self.settings.evaluation_interval_seconds
        return [
            group
            for path in self.rule_files
            for group in enforcement_groups(path, interval)
        ]

    @staticmethod
    def _raise_if_exited(process: StackProcess, when: str) -> None:
        status = process.exited()
        if status is not None:
            raise StackProcessError(
                f"{process.spec.name} exited with status {status} {when}; last "
                f"lines of {process.log_path}:\n{log_tail(process.log_path)}"
            )

    def report_evaluation_delays(self, stop: threading.Event) -> None:
        """Log the measured delay from scrape to evaluation, once known.

        Warns when it is outside the window the alignment aimed for, as it
        would be with a Prometheus that offsets rule groups differently.
        """
        if not self.settings.align_evaluations or self._process("prometheus") is None:
            return
        deadline = time.monotonic() + 3 * self.settings.evaluation_interval_seconds
        delays: dict[str, float] = {}
        while not delays and time.monotonic() < deadline and not stop.is_set():
            try:
                delays = self.evaluation_delays()
            except PhaseError as error:
                logger.debug("evaluation delays not readable yet: %s", error)
            if not delays:
                stop.wait(0.5)
        for group, delay in delays.items():
            window = DelayWindow.for_interval(self.settings.evaluation_interval_seconds)
            low, high = window.low / NANOSECONDS, window.high / NANOSECONDS
            if low - DELAY_TOLERANCE_SECONDS <= delay <= high + DELAY_TOLERANCE_SECONDS:
                logger.info(
                    "Prometheus evaluates %s %.2f s after each scrape", group, delay
                )
            else:
                logger.warning(
                    "Prometheus evaluates %s %.2f s after each scrape, outside "
                    "the %.2f-%.2f s the rule file name was chosen for, so "
                    "alerts can fire up to %.2f s later; this Prometheus may "
                    "offset rule groups unlike version 2.42",
                    group,
                    delay,
                    low,
                    high,
                    delay,
                )

    def _process(self, name: str) -> StackProcess | None:
        for process in self.processes:
            if process.spec.name == name:
                return process
        return None

    def stop(self) -> None:
        """Stop every child in reverse order of start, then free the state folder."""
        while self.processes:
            self.processes.pop().stop()
        self._lock.release()

    def check_children(self) -> None:
        """Raise StackProcessError when a child has exited."""
        for process in self.processes:
            status = process.exited()
            if status is not None:
                raise StackProcessError(
                    f"{process.spec.name} (pid {process.pid}) exited with status "
                    f"{status}; last lines of {process.log_path}:\n"
                    f"{log_tail(process.log_path)}"
                )

    def run_until(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        """Watch the children until ``stop`` is set or one of them exits."""
        while not stop.wait(poll_seconds):
            self.check_children()

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run a stack command and return the exit status."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s stack: %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    arguments = build_parser().parse_args(argv)
    try:
        settings = settings_from_arguments(arguments)
    except StackConfigError as error:
        print(f"stack: {error}", file=sys.stderr)
        return 2

    if arguments.command == "config":
        return write_config_files(settings)

    stop = threading.Event()
    starting = True

    def request_stop(signal_number: int, frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signal_number).name)
        stop.set()
        if starting:
            # Stack.start() stops the children it has started on the way out.
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # A closed terminal sends SIGHUP to its whole process group.
    signal.signal(signal.SIGHUP, request_stop)
    started = time.monotonic()
    with Stack(settings) as stack:
        try:
            try:
                stack.start()
            finally:
                starting = False
            logger.info("stack healthy after %.1f s", time.monotonic() - started)
            print_summary(stack.settings, stack.rule_files)
            stack.report_evaluation_delays(stop)
            stack.run_until(stop)
        except StackConfigError as error:
            print(f"stack: {error}", file=sys.stderr)
            return 2
        except StackProcessError as error:
            print(f"stack: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("stack: stopped during start", flush=True)
            return 130
    print("stack: stopped", flush=True)
    return 0


def write_config_files(settings: StackSettings) -> int:
    """Write and check the configs, unless a running stack uses the folder."""
    lock = StateLock(settings.state)
    try:
        lock.acquire()
    except StackProcessError as error:
        print(f"stack: {error}", file=sys.stderr)
        return 1
    try:
        write_configs(settings, fresh_token=False)
        check_configs(settings)
    except StackConfigError as error:
        print(f"stack: {error}", file=sys.stderr)
        return 2
    finally:
        lock.release()
    print(f"configs written to {settings.state} and checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
