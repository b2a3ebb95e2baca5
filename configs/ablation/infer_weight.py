# Weight of the soft view in the inference ensemble, on the mini CLIPs (CPU benchmarks).
# Every variant runs the current defaults (clipprompt/config.py) but for the weight.
{
    "description": "weight of the soft view in the inference ensemble",
    "config_root": "benchmarks/configs/trainers",
    "reference": "w_1.0",
    "variants": [
        {"name": "w_1.0", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.INFER_WEIGHT", "1.0"]},
        {"name": "w_0.8", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.8"]},
        {"name": "w_0.5", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.INFER_WEIGHT", "0.5"]},
    ],
}
