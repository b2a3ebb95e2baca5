# What each DualPromptMI term adds to CoOp + the inference ensemble, on the mini CLIPs (CPU benchmarks):
# python -m tools.ablation --plan components --dataset fashion_mnist --pseudo --select-by hm ...
# "full" runs the current defaults (clipprompt/config.py), so its meaning follows them.
{
    "description": "what each DualPromptMI term adds to CoOp + the inference ensemble",
    "config_root": "benchmarks/configs/trainers",
    "reference": "ensemble_only",
    "variants": [
        {"name": "ensemble_only", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1_ensemble_only", "note": "MI and augmentation off"},
        {"name": "full", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "note": "defaults"},
        {"name": "no_mi", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "0.0"], "note": "augmentation only"},
        {"name": "no_aug", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.AUG.WEIGHT", "0.0"], "note": "MI only"},
        {"name": "coop", "trainer": "CoOp", "cfg": "mini_c4_ep20_batch8_ctxv1", "note": "no ensemble"},
    ],
}
