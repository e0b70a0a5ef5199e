"""README's tour, run as a reader would: its shell and Python blocks, word for word, against
a fresh server (the address in ``URL`` as the tour sets it), ending in the state its
comments describe."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

from tests.e2e.conftest import REPO_ROOT

README = REPO_ROOT / "README.rst"


def section(title: str) -> list[str]:
    """The lines of README's section ``title`` (up to the next section)."""
    lines = README.read_text("utf-8").splitlines()
    start = lines.index(title) + 2
    end = next(i for i in range(start, len(lines) - 1)
               if lines[i + 1] and set(lines[i + 1]) == {"-"} and lines[i])
    return lines[start:end]


def code_blocks(lines: list[str], language: str) -> list[str]:
    """The ``.. code-block:: <language>`` blocks of ``lines``, dedented."""
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == f".. code-block:: {language}":
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                body.append(lines[i][4:])
                i += 1
            blocks.append("\n".join(body).strip() + "\n")
        else:
            i += 1
    return blocks


def json_documents(text: str) -> list:
    """The JSON documents curl printed back to back."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        doc, at = decoder.raw_decode(text, at)
        found.append(doc)
        while at < len(text) and text[at].isspace():
            at += 1
    return found


def test_the_tour_ends_as_its_comments_say(server):
    tour = section("A tour")
    assert any(line.strip().startswith("export URL=") for line in tour)
    env = {"URL": server.base_url, "CONSUMER_API_URL": server.base_url, "PATH": "/usr/bin:/bin"}

    [shell] = code_blocks(tour, "bash")
    done = subprocess.run(["bash", "-e", "-c", shell], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    _created, produced, read_2, read_0 = json_documents(done.stdout)
    assert [o["partition"] for o in produced["offsets"]] == [2, 0]  # user-1 went to 2
    assert [r["value"] for r in read_2["records"]] == ["hello"]
    assert [r["value"] for r in read_0["records"]] == ["world"]

    [python] = code_blocks(tour, "python")
    ran = subprocess.run([sys.executable, "-c", python], env=env, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    printed = ran.stdout.splitlines()
    partition = re.search(r"all five on partition (\d+)", python).group(1)
    assert len(printed) == 6 and all(line.startswith(f"{partition} ") for line in printed[:5]), \
        printed
    expected = next(line for line in python.splitlines() if line.startswith("# [("))
    assert ast.literal_eval(printed[-1]) == ast.literal_eval(expected[2:].split(":")[0])


def test_the_topic_statistics_example_answers_as_shown(server):
    lines = section("Topic statistics")
    [shell] = code_blocks(lines, "bash")
    [shown] = code_blocks(lines, "json")
    env = {"URL": server.base_url, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["bash", "-e", "-c", shell], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    _created, _produced, *answers = json_documents(done.stdout)
    assert answers == json_documents(shown)
