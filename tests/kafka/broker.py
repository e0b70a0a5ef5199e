"""A real single-node Apache Kafka broker (KRaft: one process is broker and controller) for
the tests, run from the jars ``make test`` fetches into ``.kafka/libs`` (tests/kafka/pom.xml).

:func:`start_broker` formats a fresh log directory, starts ``kafka.Kafka`` on two free
loopback ports (clients, controller) in its own process group with a small heap, and waits
until it answers a metadata request; :meth:`Broker.stop` ends it by its pid (SIGTERM, then
SIGKILL of the group). The broker's output goes to ``broker.log`` in its directory, shown
when it fails to start. Settings favour a fast test run over durability: one replica,
``group.initial.rebalance.delay.ms=0``, no automatic topic creation.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LIBS = REPO_ROOT / ".kafka" / "libs"
#: real seconds the broker has to answer after it is started
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
HEAP = ("-Xms128m", "-Xmx512m")

SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={log_dir}
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=1
"""

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


class BrokerUnavailable(RuntimeError):
    """What is needed to run the broker is missing here (the message says what)."""


def missing() -> str | None:
    """Why a broker cannot run on this machine, or None when it can."""
    if shutil.which("java") is None:
        return "no java on PATH (install a JDK 17+ and run make test)"
    if not any(LIBS.glob("kafka_2.13-*.jar")):
        return f"no Kafka jars in {LIBS} (make test fetches them with Maven)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    directory: Path
    port: int
    proc: subprocess.Popen

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"127.0.0.1:{self.port}"

    def output(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return (self.directory / "broker.log").read_text(errors="replace")
        return ""

    def stop(self) -> None:
        """SIGTERM the broker and wait (bounded); SIGKILL its process group if it lingers."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def _java(*args: str, log=None) -> list[str]:
    return ["java", *HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dlog4j2.configurationFile=" + str(log), "-cp", str(LIBS / "*"), *args]


def start_broker(directory: Path) -> Broker:
    """Format ``directory`` and start a broker there; BrokerUnavailable when this machine
    cannot run one, RuntimeError (with the broker's output) when it does not start."""
    why = missing()
    if why:
        raise BrokerUnavailable(why)
    directory.mkdir(parents=True, exist_ok=True)
    port, controller_port = free_port(), free_port()
    config = directory / "server.properties"
    config.write_text(SERVER_PROPERTIES.format(port=port, controller_port=controller_port,
                                               log_dir=directory / "data"))
    log4j = directory / "log4j2.properties"
    log4j.write_text(LOG4J2)
    formatted = subprocess.run(
        _java("kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}",
              f"--config={config}", log=log4j), capture_output=True, text=True, timeout=120)
    if formatted.returncode:
        raise RuntimeError("formatting the Kafka log directory failed:\n"
                           + formatted.stdout[-2000:] + formatted.stderr[-2000:])
    with open(directory / "broker.log", "ab") as out:
        proc = subprocess.Popen(_java("kafka.Kafka", str(config), log=log4j), cwd=directory,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    broker = Broker(directory, port, proc)
    try:
        _wait_ready(broker)
    except BaseException:
        broker.stop()
        raise
    return broker


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding."""
    import base64
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _wait_ready(broker: Broker) -> None:
    import logging
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 2000,
                         "logger": logging.getLogger("tests.kafka.broker")})
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if broker.proc.poll() is not None:
            raise RuntimeError(f"the Kafka broker exited with {broker.proc.returncode}:\n"
                               + broker.output()[-4000:])
        with contextlib.suppress(Exception):
            admin.list_topics(timeout=2)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Kafka broker did not answer within {START_TIMEOUT_S} s:\n"
                               + broker.output()[-4000:])
        time.sleep(0.2)  # start-up polling only
