# Each peer's learning rate on the many-class benchmark, chosen on its base classes only
# (python -m tools.ablation --plan configs/ablation/peers_lr.py --dataset fashion_colours --pseudo, seeds 1-6):
# per trainer, the LR with the best mean pseudo HM (pseudo-base / pseudo-new classes cut from the base
# classes, scored on their validation images). Grid: the published LR (0.002 for all four), our earlier
# choice (0.02, picked from base accuracy of a CoOp sweep on FashionMNIST, and applied to CoCoOp although
# CoCoOp's batch of 1 takes 4x CoOp's steps) and one between. Epochs stay as in the configs. Read the table
# per trainer: the reference (CoOp at 0.02) only anchors the paired columns.
# Run twice: on design A with 3 seeds (iteration A',
# docs/experiments/2026-11-30-fashion-colours-design-a.md#a-each-trainers-own-learning-rate) and on
# design E with 6 seeds (docs/experiments/2026-11-30-peers-lr-selection.md).
{
    "config_root": "benchmarks/configs/trainers",
    "reference": "CoOp_lr0.02",
    "variants": [
        {"name": "CoOp_lr0.002", "trainer": "CoOp", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["OPTIM.LR", "0.002"]},
        {"name": "CoOp_lr0.005", "trainer": "CoOp", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["OPTIM.LR", "0.005"]},
        {"name": "CoOp_lr0.02", "trainer": "CoOp", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["OPTIM.LR", "0.02"]},
        {"name": "CoCoOp_lr0.002", "trainer": "CoCoOp", "cfg": "mini_c4_ep10_batch1_ctxv1", "opts": ["OPTIM.LR", "0.002"]},
        {"name": "CoCoOp_lr0.005", "trainer": "CoCoOp", "cfg": "mini_c4_ep10_batch1_ctxv1", "opts": ["OPTIM.LR", "0.005"]},
        {"name": "CoCoOp_lr0.02", "trainer": "CoCoOp", "cfg": "mini_c4_ep10_batch1_ctxv1", "opts": ["OPTIM.LR", "0.02"]},
        {"name": "KgCoOp_lr0.002", "trainer": "KgCoOp", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["OPTIM.LR", "0.002"]},
        {"name": "KgCoOp_lr0.005", "trainer": "KgCoOp", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["OPTIM.LR", "0.005"]},
        {"name": "KgCoOp_lr0.02", "trainer": "KgCoOp", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["OPTIM.LR", "0.02"]},
        {"name": "ProGrad_lr0.002", "trainer": "ProGrad", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["OPTIM.LR", "0.002"]},
        {"name": "ProGrad_lr0.005", "trainer": "ProGrad", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["OPTIM.LR", "0.005"]},
        {"name": "ProGrad_lr0.02", "trainer": "ProGrad", "cfg": "mini_c4_ep20_batch8_ctxv1", "opts": ["OPTIM.LR", "0.02"]},
    ],
}
