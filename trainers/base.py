"""The one Dassl trainer of this toolkit; ``trainers/__init__.py`` makes one subclass per method.

A method (:mod:`clipprompt.methods`: model, options, registration) is all a trainer needs:
``PromptTrainer`` builds its model and calls its hooks (loss, backward, begin/end of epoch,
synced statistics; :class:`clipprompt.methods.base.PromptCLIP`). Everything Dassl asks of a
trainer is here: CLIP loading, freezing, precision, optimiser and scheduler, safe checkpoints,
explicit resume, cached evaluation, results.json. No method is named in this file.
"""

import contextlib
import datetime
import io
import os
import time

import torch
from dassl.engine import TrainerX
from dassl.evaluation import build_evaluator
from dassl.metrics import compute_accuracy
from dassl.optim import build_optimizer

from clipprompt.clip.backbone import as_backbone, check_pixel_normalisation
from clipprompt.clip.loader import load_clip
from clipprompt.errors import UserError
from clipprompt.methods import BuildContext
from clipprompt.prompts.templates import dataset_template, expand_templates
from clipprompt.results.records import run_record, write_run_results
from clipprompt.runtime import checkpoint as ckpt
from clipprompt.runtime import distributed
from clipprompt.runtime.scheduler import build_lr_scheduler

MODEL_NAME = ckpt.MODEL_NAME


class StepContext:
    """What a model's ``backward`` hook may use: the amp scaler and the gradient reduction."""

    def __init__(self, trainer):
        self.trainer = trainer

    def scale(self, loss):
        scaler = self.trainer.scaler
        return scaler.scale(loss) if scaler is not None else loss

    def reduce(self, grads):
        """The global batch's gradients under torchrun (``grads`` itself in one process)."""
        return self.trainer.global_gradients(grads)


class RunContext:
    """What a model's lifecycle hooks may use (``begin_training``, ``begin_epoch``, ``end_epoch``)."""

    def __init__(self, trainer):
        self.trainer = trainer

    @property
    def epoch(self):
        return self.trainer.epoch

    @property
    def start_epoch(self):
        return self.trainer.start_epoch

    @property
    def max_epoch(self):
        return self.trainer.max_epoch

    def batches(self):
        """``(images, labels)`` of the training set, on the device, in the loader's order."""
        return (self.trainer.parse_batch_train(batch) for batch in self.trainer.train_loader_x)

    def autocast(self):
        return self.trainer.autocast()

    def sync_statistics(self):
        """After every process recomputed its share of the synced statistics: make them the total."""
        self.trainer.statistics.sync(from_zero=True)


class PromptTrainer(TrainerX):
    """Under torchrun (see clipprompt/runtime/distributed.py): each process trains on its slice of every
    global batch, trainable gradients are reduced after backward, process 0 alone writes files
    and evaluates."""

    METHOD = None  # the clipprompt.methods.Method this trainer runs (trainers/__init__.py sets it)
    train_sampler = None  # GlobalBatchSampler of the training loader under torchrun; None in one process
    statistics = distributed.AdditiveStatistics([])  # sums kept equal over processes (build_model fills it)

    # ----- configuration ----------------------------------------------------
    def check_cfg(self, cfg):
        """Read and validate the method's options before anything is built (one-line errors)."""
        self.options = self.METHOD.options_from(cfg)

    @property
    def precision(self):
        """fp16/amp need a GPU; on a CPU the same model runs in fp32.

        ``CLIPPROMPT_CPU_HALF=1`` keeps fp16/amp (bfloat16 autocast) on a CPU: slow,
        meant for the tests of these code paths with a tiny CLIP.
        """
        prec = self.options.prec
        if prec != "fp32" and self.device.type != "cuda" and os.environ.get("CLIPPROMPT_CPU_HALF") != "1":
            if not getattr(self, "_told_precision", False):
                print(f"Note: PREC {prec} needs a GPU; running in fp32 on {self.device.type}")
                self._told_precision = True
            return "fp32"
        return prec

    def templates(self, entries, role):
        """Template entries expanded for this run's dataset (:func:`expand_templates`), printed under ``role``."""
        dataset = self.dm.dataset
        dataset_tpl = getattr(dataset, "template", None) or dataset_template(self.cfg.DATASET.NAME)
        templates = expand_templates(entries, dataset_tpl, getattr(dataset, "ensemble_templates", None))
        print(f"{role}: {templates}")
        return templates

    @classmethod
    def prompt_depths(cls, cfg):
        """``[(config key, "text" | "image", depth)]``: the layers of CLIP's towers this configuration
        puts prompts into, checked against the backbone before the model is built (train.py)."""
        return cls.METHOD.prompt_depths(cfg)

    # ----- data -------------------------------------------------------------
    def build_data_loader(self):
        """Dassl's loaders; under torchrun the training loader takes a ``GlobalBatchSampler``.

        One process keeps Dassl's own sampler, which draws from the global torch generator as
        upstream CoOp does: with ``DATASET.FEWSHOT_SAMPLER coop`` a run then sees upstream's samples
        in upstream's order (docs/cpu_benchmarks.md#parity-with-upstream-coop). Under torchrun the
        order is drawn from (seed, epoch), the same on every process, and each process takes its
        slice of every global batch.
        """
        super().build_data_loader()
        if not distributed.is_distributed():
            return
        sampler_name = self.cfg.DATALOADER.TRAIN_X.SAMPLER
        if sampler_name not in ("RandomSampler", "SequentialSampler"):
            raise UserError(f"DATALOADER.TRAIN_X.SAMPLER {sampler_name} is not supported under torchrun; "
                            "use RandomSampler or SequentialSampler")
        seed = self.cfg.SEED if self.cfg.SEED >= 0 else distributed.broadcast_value(int(torch.randint(2 ** 31, ())))
        loader, batch_size, world = self.train_loader_x, self.cfg.DATALOADER.TRAIN_X.BATCH_SIZE, distributed.world_size()
        self.train_sampler = distributed.GlobalBatchSampler(
            len(loader.dataset), batch_size, rank=distributed.rank(), world_size=world, seed=seed,
            shuffle=sampler_name == "RandomSampler")
        self.train_loader_x = self.dm.train_loader_x = torch.utils.data.DataLoader(
            loader.dataset, batch_sampler=self.train_sampler, num_workers=loader.num_workers,
            pin_memory=loader.pin_memory)
        if world > 1:
            print(f"Distributed training: {world} processes x batch {batch_size} (global batch "
                  f"{world * batch_size}), {len(self.train_sampler)} steps per epoch")

    # ----- model ------------------------------------------------------------
    def build_model(self):
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        source = cfg.MODEL.BACKBONE.PATH or cfg.MODEL.BACKBONE.NAME
        if cfg.MODEL.BACKBONE.NAME.startswith("open_clip:"):
            source = f"{cfg.MODEL.BACKBONE.NAME}, {cfg.MODEL.BACKBONE.PATH or cfg.MODEL.BACKBONE.PRETRAINED}"
        print(f"Loading CLIP ({source})")
        with distributed.main_process_first():  # one download of the weights, not one per process
            clip_model = load_clip(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.PATH, precision=self.precision,
                                   pretrained=cfg.MODEL.BACKBONE.PRETRAINED)
        backbone = as_backbone(clip_model)  # wrapped once; the method's modules take the adapter
        size = backbone.image_size
        if tuple(cfg.INPUT.SIZE) != size:
            shown = size[0] if size[0] == size[1] else size
            raise UserError(f"INPUT.SIZE {tuple(cfg.INPUT.SIZE)} does not match the CLIP image resolution {shown}; set INPUT.SIZE ({size[0]}, {size[1]})")
        check_pixel_normalisation(backbone, cfg.INPUT.PIXEL_MEAN, cfg.INPUT.PIXEL_STD)
        context = BuildContext(templates=self.templates, max_epoch=cfg.OPTIM.MAX_EPOCH)
        self.model = self.METHOD.build(backbone, classnames, self.options, context)
        self.model.text_encoder.chunk_size = cfg.MODEL.TEXT_CHUNK_SIZE  # validated there (UserError)
        trainable = self.model.freeze_clip()
        self.model.to(self.device)
        self.trainable_params = trainable
        print(f"Trainable parameters: {sum(p.numel() for p in trainable):,}")
        self.statistics = distributed.AdditiveStatistics(self.model.synced_statistics())
        self.optim = build_optimizer(trainable, cfg.OPTIM) if trainable else None
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM) if trainable else None
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "amp" else None
        self.register_model(MODEL_NAME, self.model, self.optim, self.sched)
        if distributed.is_distributed():
            distributed.broadcast_tensors(trainable)  # the same start everywhere, even without a fixed seed
            if self.optim is not None:  # a gradient never reduced in forward_backward is reduced before the step
                self.optim.register_step_pre_hook(self._reduce_before_step)
            self.statistics.mark()
            self.decorrelate_processes()

    def decorrelate_processes(self):
        """Processes other than 0 draw their own augmentations (rank-shifted seed); process 0 keeps
        the stream of a one-process run."""
        if distributed.rank() > 0:
            from dassl.utils import set_random_seed

            set_random_seed(int(torch.randint(2 ** 31, ())) + distributed.rank())

    # ----- training -----------------------------------------------------------
    def autocast(self):
        if self.precision == "amp":
            return torch.autocast(self.device.type)
        return contextlib.nullcontext()

    def reduce_gradients(self):
        """Under torchrun: make the trainable gradients those of the global batch's mean loss
        (once a step: a model's ``backward`` hook may have done it through ``StepContext.reduce``)."""
        if self._gradients_reduced:
            return
        if self.train_sampler is not None and distributed.is_distributed():
            distributed.reduce_gradients(self.trainable_params, self.train_sampler.step_weight(self.batch_idx))
            self._gradients_reduced = True

    _gradients_reduced = False

    def _reduce_before_step(self, optimizer, args, kwargs):
        # With amp, reduce before GradScaler.step (its inf check must agree on every process):
        # a trainer that only sets .grad and steps is reduced here.
        if not self._gradients_reduced:
            self.reduce_gradients()
        self._gradients_reduced = False

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def global_gradients(self, grads):
        """The global batch's gradients under torchrun (:meth:`reduce_gradients`); else ``grads``."""
        for param, grad in zip(self.trainable_params, grads):
            param.grad = grad
        self._gradients_reduced = False
        self.reduce_gradients()
        return [param.grad for param in self.trainable_params]

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with self.autocast():
            loss, logits, terms = self.model.loss(image, label)
        self.optim.zero_grad()
        if self.scaler is None:
            self.detect_anomaly(loss)
        self.model.backward(loss, terms, self.trainable_params, StepContext(self))
        self.reduce_gradients()  # amp: before GradScaler.step, so an inf anywhere skips the step everywhere
        if self.scaler is not None:
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            self.optim.step()
        self.statistics.sync()
        summary = {"loss": loss.item(), "acc": compute_accuracy(logits, label)[0].item()}
        summary.update({k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in terms.items()})
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    # ----- the model's lifecycle ------------------------------------------------
    def _say(self, message):
        if message:
            print(message)

    def before_train(self):
        super().before_train()
        self._say(self.model.begin_training(RunContext(self)))

    def before_epoch(self):
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(self.epoch)
        self.statistics.sync()  # e.g. class prototypes computed by each process on its slice
        self._say(self.model.begin_epoch(RunContext(self)))

    def after_epoch(self):
        # Before Dassl's after_epoch, which saves the epoch's checkpoint: what the model does at an
        # epoch's end (e.g. PromptSRC's aggregate after the last one) is in that checkpoint.
        self._say(self.model.end_epoch(RunContext(self)))
        super().after_epoch()
        self.evaluated_epoch = self.epoch + 1

    def train(self):
        if self.METHOD.trains:
            return super().train()
        self.time_start = time.time()  # nothing to learn (zero-shot CLIP): evaluate and record like any run
        self.test()

    def resume_model_if_exist(self, directory):
        """Resume only when asked (``--resume DIR``); never from the output dir by surprise."""
        if not self.cfg.RESUME:
            return 0
        path = ckpt.find_checkpoint(self.cfg.RESUME, MODEL_NAME)
        payload = ckpt.load_checkpoint(path, expected_trainer=self.trainer_name)
        ckpt.load_matching_state(self.model, payload["state_dict"], source=path)
        if self.optim is not None and payload["optimizer"] is not None:
            self.optim.load_state_dict(payload["optimizer"])
        if self.sched is not None and payload["scheduler"] is not None:
            self.sched.load_state_dict(payload["scheduler"])
        if payload["extra"].get("rng_state") is not None:
            torch.set_rng_state(payload["extra"]["rng_state"])
        if distributed.is_distributed():
            self.statistics.mark()  # every process loaded the same checkpoint
            self.decorrelate_processes()
        print(f"Resuming from {path} (completed epochs: {payload['epoch']})")
        return payload["epoch"]

    evaluated_epoch = None  # completed epochs of the weights being evaluated

    def after_train(self):
        print("Finish training")
        if not self.cfg.TEST.NO_TEST and distributed.is_main_process():
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir, epoch=ckpt.BEST)
            else:
                print("Deploy the last-epoch model")
            self.test()
        print(f"Elapsed: {datetime.timedelta(seconds=round(time.time() - self.time_start))}")
        self.close_writer()

    # ----- checkpoints --------------------------------------------------------
    @property
    def trainer_name(self):
        return type(self).__name__

    def init_writer(self, log_dir):
        if distributed.is_main_process():  # tensorboard: process 0 only
            super().init_writer(log_dir)

    def save_model(self, epoch, directory, is_best=False, val_result=None, model_name=""):
        """Dassl's signature; writes a weights-only-loadable checkpoint (process 0 only)."""
        if not distributed.is_main_process():
            return
        completed = epoch + 1
        target = ckpt.BEST if model_name == "model-best.pth.tar" else completed
        path = ckpt.checkpoint_path(directory, MODEL_NAME, target)
        ckpt.save_checkpoint(
            path,
            trainer=self.trainer_name,
            model_state=self.model.trainable_state_dict(),
            epoch=completed,
            optimizer_state=self.optim.state_dict() if self.optim is not None else None,
            scheduler_state=self.sched.state_dict() if self.sched is not None else None,
            class_count=self.num_classes,
            extra={"classnames": list(self.dm.dataset.classnames), "val_result": val_result,
                   "rng_state": torch.get_rng_state()},
        )

    def load_model(self, directory, epoch=None):
        """Load a trained prompt; on another class set only class-independent state."""
        if not self.METHOD.trains:
            if directory:
                print(f"Note: {self.trainer_name} has no trained weights; --model-dir is ignored")
            return
        if not directory:
            raise UserError("--model-dir is required with --eval-only for a trained prompt")
        path = ckpt.find_checkpoint(directory, MODEL_NAME, epoch)
        payload = ckpt.load_checkpoint(path, expected_trainer=self.trainer_name)
        recorded = payload["extra"].get("classnames")  # None: imported from the official code (tools/import_checkpoint.py)
        same_classes = recorded == list(self.dm.dataset.classnames)
        if not same_classes and self.model.class_specific:
            raise UserError(f"{path} holds class-specific context (CSC) trained on other classes; "
                            "it cannot be evaluated on a different class set")
        skip = () if same_classes else self.model.CLASS_DEPENDENT_PREFIXES
        ckpt.load_matching_state(self.model, payload["state_dict"], skip_prefixes=skip, source=path)
        self.evaluated_epoch = payload["epoch"]
        scope = "" if same_classes else ", class names not recorded" if recorded is None else ", class-independent state only"
        print(f"Loaded {path} (epoch {payload['epoch']}{scope})")

    # ----- evaluation -------------------------------------------------------
    def model_inference(self, input):
        return self.model.predict(input)["main"]

    @torch.no_grad()
    def test(self, split=None):
        """Evaluate once with cached text features; write results(.json) beside the log.

        Under torchrun process 0 evaluates the whole split alone (the accuracy of one process);
        the others return NaN, which Dassl's best-on-val comparison never takes as best.
        """
        if not distributed.is_main_process():
            return float("nan")
        self.set_model_mode("eval")
        split = split or self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            loader = self.val_loader
        else:
            split, loader = "test", self.test_loader
        print(f"Evaluate on the *{split}* set")
        evaluators = {}
        with self.model.cached_text_features():
            for batch in loader:
                image, label = self.parse_batch_test(batch)
                with self.autocast():
                    outputs = self.model.predict(image)
                for name, logits in outputs.items():
                    if name not in evaluators:
                        with contextlib.redirect_stdout(io.StringIO()):  # Dassl announces each evaluator
                            evaluators[name] = build_evaluator(self.cfg, lab2cname=self.lab2cname)
                        evaluators[name].reset()
                    evaluators[name].process(logits.float(), label)
        results = evaluators.pop("main").evaluate()  # prints Dassl's familiar summary
        for key, value in results.items():
            self.write_scalar(f"{split}/{key}", value, self.epoch)
        variants = {}
        for name, evaluator in evaluators.items():
            with contextlib.redirect_stdout(io.StringIO()):
                res = evaluator.evaluate()
            variants[name] = {"accuracy": res["accuracy"], "macro_f1": res["macro_f1"]}
            print(f"* {name}: accuracy {res['accuracy']:.2f}%, macro_f1 {res['macro_f1']:.2f}%")
        self.write_results(split, results, variants)
        return list(results.values())[0]

    def write_results(self, split, results, variants):
        """results.json (results_<split>.json for another split); the schema lives in clipprompt/results/records.py."""
        cfg = self.cfg
        record = run_record(
            trainer=self.trainer_name,
            dataset=cfg.DATASET.NAME,
            split=split,
            subsample=cfg.DATASET.SUBSAMPLE_CLASSES,
            seed=cfg.SEED,
            shots=cfg.DATASET.NUM_SHOTS,
            config=cfg.CONFIG_NAME,
            backbone=cfg.MODEL.BACKBONE.PATH or cfg.MODEL.BACKBONE.NAME,
            accuracy=results["accuracy"],
            macro_f1=results["macro_f1"],
            num_samples=len(self.dm.dataset.test if split == "test" else self.dm.dataset.val),
            epoch=self.evaluated_epoch,
            output_dir=cfg.OUTPUT_DIR,
            variants=variants,
        )
        write_run_results(cfg.OUTPUT_DIR, record)
