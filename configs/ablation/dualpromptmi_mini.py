# DualPromptMI ablation on fashion10 (python -m tools.ablation --plan configs/ablation/dualpromptmi_mini.py --dataset fashion_mnist).
# Every variant trains with the same schedule (benchmarks/configs/trainers/*/mini_c4_ep20_batch8_ctxv1*.yaml);
# the reference is "CoOp + the hand-crafted inference ensemble" (MI and augmentation off).
# Written when the defaults were posterior MI (weight 1), intra mixup (weight 1) and w = 0.5: each
# variant now spells those out, so that the plan runs what it ran then, whatever the defaults are.
{
    "config_root": "benchmarks/configs/trainers",
    "reference": "ensemble_only",
    "variants": [
        {"name": "ensemble_only", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1_ensemble_only", "note": "CoOp + inference ensemble (MI and augmentation off)"},
        {"name": "full", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.MI.MODE", "posterior", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.MODE", "intra", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.5"], "note": "posterior MI (weight 1) + intra mixup (weight 1), w = 0.5"},
        {"name": "no_mi", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "0.0", "TRAINER.DUALPROMPTMI.MI.MODE", "posterior", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.MODE", "intra", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.5"], "note": "augmentation only"},
        {"name": "no_aug", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "0.0", "TRAINER.DUALPROMPTMI.MI.MODE", "posterior", "TRAINER.DUALPROMPTMI.AUG.MODE", "intra", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.5"], "note": "view MI only"},
        {"name": "critic_mi", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.MI.MODE", "critic", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.MODE", "intra", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.5"], "note": "critic (InfoNCE) MI instead of posterior"},
        {"name": "inter_mix", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.MODE", "inter", "TRAINER.DUALPROMPTMI.MI.MODE", "posterior", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.5"], "note": "inter-class mixup"},
        {"name": "mi_0.3", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "0.3", "TRAINER.DUALPROMPTMI.MI.MODE", "posterior", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.MODE", "intra", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.5"]},
        {"name": "mi_3.0", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "3.0", "TRAINER.DUALPROMPTMI.MI.MODE", "posterior", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.MODE", "intra", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.5"]},
        {"name": "w_0.7", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.7", "TRAINER.DUALPROMPTMI.MI.MODE", "posterior", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.MODE", "intra"], "note": "inference weight 0.7"},
        {"name": "w_0.9", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.9", "TRAINER.DUALPROMPTMI.MI.MODE", "posterior", "TRAINER.DUALPROMPTMI.AUG.WEIGHT", "1.0", "TRAINER.DUALPROMPTMI.AUG.MODE", "intra"], "note": "inference weight 0.9"},
        {"name": "coop", "trainer": "CoOp", "cfg": "mini_c4_ep20_batch8_ctxv1", "note": "plain CoOp, no ensemble"},
    ],
}
