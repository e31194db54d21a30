# Stages 2-3: dense training and pruning/fine-tuning. The expensive rules: their params are
# exactly the settings that change their result (train_spec, plus the task's settings for
# single-label and backdoor tasks: prunebias.tasks.task_train_spec), so analysis edits never rerun them.

MODELS = f"{RESULTS}/models/{{dataset}}/{{task}}/{{arch}}"


def run_identity(w, method, sparsity):
    return as_json(
        {
            "dataset": w.dataset,
            "task": w.task,
            "arch": w.arch,
            "method": method,
            "target_sparsity": sparsity,
            "seed": int(w.seed),
        }
    )


rule train_dense:
    input:
        unpack(data_files),
        unpack(task_inputs),
    output:
        model=f"{MODELS}/dense/seed{{seed}}/model.pt",
        log=f"{MODELS}/dense/seed{{seed}}/train_log.parquet",
    params:
        spec=lambda w: as_json(task_train_spec(config, w.task, "dense")),
        run=lambda w: run_identity(w, "dense", 0.0),
        data=lambda w: data_dir(w.dataset),
    log:
        f"{RESULTS}/logs/train_dense/{{dataset}}/{{task}}/{{arch}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_dense/{{dataset}}/{{task}}/{{arch}}/seed{{seed}}.tsv"
    threads: 1  # CPU default: one thread per job; GPU profiles raise it
    shell:
        "{CLI} train --data {params.data} --model {output.model} --log {output.log}"
        " --spec {params.spec:q} --run {params.run:q} {TRAIN_FLAGS} --threads {threads} > {log} 2>&1"


def prune_inputs(w):
    inputs = data_files(w)
    if starts_from_dense(w.method):
        inputs["parent"] = f"{RESULTS}/models/{w.dataset}/{w.task}/{w.arch}/dense/seed{w.seed}/model.pt"
    return inputs


rule prune:
    input:
        unpack(prune_inputs),
        unpack(task_inputs),
    output:
        model=f"{MODELS}/{{method}}/s{{sparsity}}/seed{{seed}}/model.pt",
        log=f"{MODELS}/{{method}}/s{{sparsity}}/seed{{seed}}/train_log.parquet",
    params:
        spec=lambda w: as_json(task_train_spec(config, w.task, w.method)),
        run=lambda w: run_identity(w, w.method, float(w.sparsity)),
        data=lambda w: data_dir(w.dataset),
        parent=lambda w, input: f"--parent {input.parent}" if "parent" in input.keys() else "",
    log:
        f"{RESULTS}/logs/prune/{{dataset}}/{{task}}/{{arch}}/{{method}}/s{{sparsity}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prune/{{dataset}}/{{task}}/{{arch}}/{{method}}/s{{sparsity}}/seed{{seed}}.tsv"
    threads: 1  # CPU default: one thread per job; GPU profiles raise it
    shell:
        "{CLI} train --data {params.data} --model {output.model} --log {output.log}"
        " --spec {params.spec:q} --run {params.run:q} {params.parent} {TRAIN_FLAGS} --threads {threads} > {log} 2>&1"
