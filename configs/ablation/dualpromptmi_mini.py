# DualPromptMI ablation on the mini CPU benchmark (tools/ablation.py --plan configs/ablation/dualpromptmi_mini.py).
# Every variant trains with the same schedule (configs/trainers/*/mini_c4_ep20_batch8_ctxv1*.yaml);
# MI.WEIGHT is explicit wherever it matters (the default changed to 3.0 after this ablation chose it);
# the reference is "CoOp + the hand-crafted inference ensemble" (MI and augmentation off).
{
    "config_root": "benchmarks/configs/trainers",
    "reference": "ensemble_only",
    "variants": [
        {"name": "ensemble_only", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1_ensemble_only",
         "note": "CoOp + inference ensemble (MI and augmentation off)"},
        {"name": "full", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0"],
         "note": "posterior MI (weight 1) + intra mixup (weight 1), w = 0.5"},
        {"name": "no_mi", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "0.0"], "note": "augmentation only"},
        {"name": "no_aug", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "0.0"], "note": "view MI only"},
        {"name": "critic_mi", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.MI.MODE", "critic"], "note": "critic (InfoNCE) MI instead of posterior"},
        {"name": "inter_mix", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.MODE", "inter"], "note": "inter-class mixup"},
        {"name": "mi_0.3", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "0.3"]},
        {"name": "mi_3.0", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "3.0"]},
        {"name": "w_0.7", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.7"], "note": "inference weight 0.7"},
        {"name": "w_0.9", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1",
         "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.9"], "note": "inference weight 0.9"},
        {"name": "coop", "trainer": "CoOp", "cfg": "mini_c4_ep20_batch8_ctxv1", "note": "plain CoOp, no ensemble"},
    ],
}
