# Class-wise visual augmentation settings, on the mini CLIPs (CPU benchmarks).
# The reference runs the current defaults (clipprompt/config.py).
{
    "description": "class-wise visual augmentation settings",
    "config_root": "benchmarks/configs/trainers",
    "reference": "inter",
    "variants": [
        {"name": "inter", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "note": "defaults: inter-class mixup, weight 0.25"},
        {"name": "intra", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.AUG.MODE", "intra"]},
        {"name": "inter_alpha0.4", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.AUG.ALPHA", "0.4"]},
        {"name": "no_aug_mi", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.AUG.MI_WEIGHT", "0.0"], "note": "mixup CE only"},
        {"name": "aug_1.0", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.AUG.WEIGHT", "1.0"]},
    ],
}
