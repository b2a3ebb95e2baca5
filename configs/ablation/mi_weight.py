# Weight of the view MI term (the default gaussian mode), on the mini CLIPs (CPU benchmarks).
# Every variant runs the current defaults (clipprompt/config.py) but for the weight.
{
    "description": "weight of the view MI term (the default gaussian mode)",
    "config_root": "benchmarks/configs/trainers",
    "reference": "mi_8.0",
    "variants": [
        {"name": "mi_8.0", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "8.0"]},
        {"name": "mi_2.0", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "2.0"]},
        {"name": "mi_4.0", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "4.0"]},
        {"name": "mi_16.0", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.WEIGHT", "16.0"]},
    ],
}
