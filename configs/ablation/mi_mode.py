# The view-MI estimators, each at the weight of its selection round, on the mini CLIPs (CPU benchmarks).
# The reference runs the current defaults (clipprompt/config.py).
{
    "description": "the view-MI estimators, each at the weight of its selection round",
    "config_root": "benchmarks/configs/trainers",
    "reference": "gaussian",
    "variants": [
        {"name": "gaussian", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "note": "defaults: fixed variance, W 8"},
        {"name": "gaussian_learnt_var", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.GAUSS_LEARN_VAR", "True", "TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0"]},
        {"name": "posterior", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.MODE", "posterior", "TRAINER.DUALPROMPTMI.MI.WEIGHT", "3.0"]},
        {"name": "views_nce", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.MODE", "views_nce", "TRAINER.DUALPROMPTMI.MI.WEIGHT", "3.0"]},
        {"name": "critic_infonce", "trainer": "DualPromptMI", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["TRAINER.DUALPROMPTMI.MI.MODE", "critic", "TRAINER.DUALPROMPTMI.MI.WEIGHT", "1.0"]},
    ],
}
