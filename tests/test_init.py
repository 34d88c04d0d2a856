"""The public API: what a TRL user imports from the top-level package."""

import subprocess
import sys


def test_top_level_exports():
    from kfgrpo import KFGRPOConfig, KFGRPOTrainer, TADConfig, accuracy_reward, format_reward, select_keyframes
    from kfgrpo.config import KFGRPOConfig as Config
    from kfgrpo.trainer import KFGRPOTrainer as Trainer

    assert KFGRPOConfig is Config and KFGRPOTrainer is Trainer
    assert callable(select_keyframes) and TADConfig().max_pixels == 128 * 28 * 28
    assert callable(accuracy_reward) and callable(format_reward)


def test_import_kfgrpo_stays_light():
    # The command line imports `kfgrpo` for every subcommand: torch / TRL load only when a name needs them.
    code = "import sys, kfgrpo; print(any(m in sys.modules for m in ('torch', 'trl', 'transformers')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
