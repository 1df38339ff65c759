"""scripts/: the README's two commands set up an environment once, then only run.

A stub `python3` (and the `python` of the environments it creates) records each call
instead of installing, so these tests run offline in milliseconds; CI (.ci/run) runs
the real commands twice from a fresh clone.
"""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Logs every call; says torch is installed when the marker file that `pip install
# torch==...` creates is there; makes an environment on `-m venv DIR` (fails if $VENV_FAILS).
STUB_PYTHON = r"""#!/bin/sh
echo "$(basename "$0") $*" >>"$CALLS"
case "$*" in
"-m venv "*)
    [ -z "${VENV_FAILS:-}" ] || { mkdir -p "$3"; exit 1; }
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && cp "$0" "$3/bin/run_classifier" ;;
*"find_spec('torch')"*) [ -e "$(dirname "$0")/../torch" ] ;;
"-m pip install -q torch=="*) touch "$(dirname "$0")/../torch" ;;
esac
"""
VERSION_CHECK = "python -c import sys; sys.exit(sys.version_info < (3, 10))"
FIND_TORCH = "python -c import importlib.util as u, sys; sys.exit(not u.find_spec('torch'))"


@pytest.fixture
def clone(tmp_path):
    """The scripts and the files they read, in a clone of their own, and a stub python3."""
    root = tmp_path / "clone"
    shutil.copytree(os.path.join(ROOT, "scripts"), root / "scripts")
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy(os.path.join(ROOT, name), root / name)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "python3").write_text(STUB_PYTHON)
    (stubs / "python3").chmod(0o755)
    return root


def call(clone, script, *args, **env):
    """Runs scripts/<script> with no environment active; returns (result, calls made)."""
    calls = clone.parent / "calls.log"
    calls.write_text("")
    env = {"PATH": f"{clone.parent / 'stubs'}:/usr/bin:/bin", "CALLS": str(calls), **env}
    result = subprocess.run(["sh", str(clone / "scripts" / script), *args], env=env,
                            capture_output=True, text=True, timeout=30)
    return result, calls.read_text().splitlines()


def test_first_call_sets_up_and_second_only_runs(clone):
    venv = clone / ".venv"
    result, calls = call(clone, "test.sh", "-x", "tests/test_cli.py")
    assert result.returncode == 0, result.stderr
    assert calls == [f"python3 -m venv {venv}",
                     VERSION_CHECK, FIND_TORCH,
                     "python -m pip install -q torch==2.13.0",
                     f"python -m pip install -q -e {clone}[test]",
                     "python -m pytest -x tests/test_cli.py"]
    assert result.stdout.count("setup: ") == 3
    result, calls = call(clone, "test.sh", "-x")
    assert result.returncode == 0 and "setup: " not in result.stdout
    assert calls == [VERSION_CHECK, FIND_TORCH, "python -m pytest -x"]


def test_quickstart_runs_the_readme_command_into_runs(clone):
    result, calls = call(clone, "quickstart.sh", "--num_train_epochs=1")
    assert result.returncode == 0, result.stderr
    assert calls[-1] == (
        f"run_classifier --task_name=sentence_similarity "
        f"--data_dir={clone}/data/sentence_similarity --output_dir={clone}/runs/quickstart "
        "--overwrite_output_dir --do_train --do_eval --do_predict --learning_rate=1e-4 "
        "--num_train_epochs=1")
    assert calls.count(f"python -m pip install -q -e {clone}[test]") == 1
    result, calls = call(clone, "quickstart.sh")
    assert [c.split()[0] for c in calls] == ["python", "python", "run_classifier"]


def test_active_environment_with_its_own_torch_is_used_as_is(clone, tmp_path):
    env = tmp_path / "cuda-env"
    (env / "bin").mkdir(parents=True)
    shutil.copy(clone.parent / "stubs" / "python3", env / "bin" / "python")
    (env / "torch").touch()  # a torch of the user's choice, a CUDA build say
    result, calls = call(clone, "test.sh", VIRTUAL_ENV=str(env))
    assert result.returncode == 0, result.stderr
    assert not any("venv" in c or "torch==" in c for c in calls)
    assert f"python -m pip install -q -e {clone}[test]" in calls
    assert not (clone / ".venv").exists() and (env / ".bert-run-classifier-installed").exists()


def test_a_changed_setup_cfg_installs_the_project_again(clone):
    call(clone, "test.sh")
    with open(clone / "setup.cfg", "a") as f:
        f.write("\n# a new dependency\n")
    result, calls = call(clone, "test.sh")
    assert result.returncode == 0, result.stderr
    assert [c for c in calls if " pip " in c] == [f"python -m pip install -q -e {clone}[test]"]


def test_a_failed_venv_leaves_nothing_and_says_what_to_install(clone):
    result, calls = call(clone, "quickstart.sh", VENV_FAILS="1")
    assert result.returncode == 1
    assert result.stderr == ("setup: python3 -m venv failed "
                             "(Debian and Ubuntu: apt install python3-venv)\n")
    assert not (clone / ".venv").exists() and len(calls) == 1


def test_scripts_are_executable_posix_shell():
    for name in ("setup.sh", "quickstart.sh", "test.sh"):
        path = os.path.join(ROOT, "scripts", name)
        assert os.access(path, os.X_OK), name
        assert subprocess.run(["sh", "-n", path]).returncode == 0, name
