"""The README's commands are the ones that are run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_ones():
    commands = readme_commands()
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert "triton-convt-report" in main_job
    # The test block: the install line, the quick tier and the full tier, each a line CI runs as it stands.
    install, quick, full = tests.strip().splitlines()
    assert "pip install" in install and "pytest" in quick and "-m full" not in quick and quick + " -m full" == full
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert all(line in ci_lines for line in (install, quick, full))
