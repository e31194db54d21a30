# Stages 2-3: dense training and pruning/fine-tuning. The expensive rules: their params are
# exactly the settings that change their result (train_spec, plus the task's settings for
# single-label and backdoor tasks: prunebias.tasks.task_train_spec), and they take no code
# inputs, so analysis edits never rerun them.


rule train_dense:
    input:
        unpack(data_files),
        unpack(task_inputs),
    output:
        model=f"{MODELS}/dense/seed{{seed}}/model.pt",
        log=f"{MODELS}/dense/seed{{seed}}/train_log.parquet",
    log:
        f"{RESULTS}/logs/train_dense/{{dataset}}/{{task}}/{{arch}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_dense/{{dataset}}/{{task}}/{{arch}}/seed{{seed}}.tsv"
    priority: training_priority
    conda:
        CONDA_ENV
    threads: 1  # CPU default: one thread per job; GPU profiles raise it
    resources:
        torch_compile=TORCH_COMPILE,
    params:
        spec=lambda w: as_json(task_train_spec(config, w.task, "dense")),
        run=lambda w: run_identity(w, "dense", 0.0),
        triggered=optional_input("triggered"),
    shell:
        "python -m prunebias.cli train --index {input.index} --images {input.images} {params.triggered}"
        " --model {output.model} --log {output.log}"
        " --spec {params.spec:q} --run {params.run:q} --compile {resources.torch_compile}"
        " --threads {threads} > {log} 2>&1"


rule prune:
    input:
        unpack(prune_inputs),
        unpack(task_inputs),
    output:
        model=f"{MODELS}/{{method}}/s{{sparsity}}/seed{{seed}}/model.pt",
        log=f"{MODELS}/{{method}}/s{{sparsity}}/seed{{seed}}/train_log.parquet",
    log:
        f"{RESULTS}/logs/prune/{{dataset}}/{{task}}/{{arch}}/{{method}}/s{{sparsity}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prune/{{dataset}}/{{task}}/{{arch}}/{{method}}/s{{sparsity}}/seed{{seed}}.tsv"
    wildcard_constraints:
        method=r"(?!dense|int8)[a-z0-9_]+",
    priority: training_priority
    conda:
        CONDA_ENV
    threads: 1  # CPU default: one thread per job; GPU profiles raise it
    resources:
        torch_compile=TORCH_COMPILE,
    params:
        spec=lambda w: as_json(task_train_spec(config, w.task, w.method)),
        run=lambda w: run_identity(w, w.method, float(w.sparsity)),
        triggered=optional_input("triggered"),
        parent=optional_input("parent"),
    shell:
        "python -m prunebias.cli train --index {input.index} --images {input.images} {params.triggered}"
        " --model {output.model} --log {output.log}"
        " --spec {params.spec:q} --run {params.run:q} {params.parent} --compile {resources.torch_compile}"
        " --threads {threads} > {log} 2>&1"


# int8: the dense model quantized (static, calibrated on training images); nothing is trained.
rule quantize:
    input:
        unpack(data_files),
        unpack(task_inputs),
        parent=f"{MODELS}/dense/seed{{seed}}/model.pt",
    output:
        model=f"{MODELS}/int8/s0/seed{{seed}}/model.pt",
    log:
        f"{RESULTS}/logs/quantize/{{dataset}}/{{task}}/{{arch}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/quantize/{{dataset}}/{{task}}/{{arch}}/seed{{seed}}.tsv"
    conda:
        CONDA_ENV
    threads: 1
    params:
        run=lambda w: run_identity(w, "int8", 0.0),
        settings=lambda w: as_json(quantize_settings(w.dataset)),
        triggered=optional_input("triggered"),
    shell:
        "python -m prunebias.cli quantize --index {input.index} --images {input.images} {params.triggered}"
        " --parent {input.parent} --model {output.model} --run {params.run:q} --settings {params.settings:q}"
        " --threads {threads} > {log} 2>&1"


# A user's own dense model (datasets.<name>.dense_models) stands for the joint task's dense
# model: imported, never trained (ruleorder), its outputs mapped to the attributes by name.
ruleorder: import_dense > train_dense


rule import_dense:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        file=user_dense_file,
    output:
        model=f"{MODELS}/dense/seed{{seed}}/model.pt",
    log:
        f"{RESULTS}/logs/import_dense/{{dataset}}/{{task}}/{{arch}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/import_dense/{{dataset}}/{{task}}/{{arch}}/seed{{seed}}.tsv"
    wildcard_constraints:
        dataset=one_of(USER_DENSE_DATASETS),
        task=JOINT,
    conda:
        CONDA_ENV
    params:
        run=lambda w: run_identity(w, "dense", 0.0),
        outputs=lambda w: as_json(config["datasets"][w.dataset]["dense_models"][w.arch]["outputs"]),
        image_size=lambda w: config["train"].get("crop_size") or config["datasets"][w.dataset]["resolution"],
    shell:
        "python -m prunebias.cli import-dense --index {input.index} --file {input.file:q} --model {output.model}"
        " --run {params.run:q} --outputs {params.outputs:q} --image-size {params.image_size} > {log} 2>&1"
