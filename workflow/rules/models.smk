# train@<variant> -> evaluate@<variant> (every test set) -> report (see dvc.yaml for the same stages).
# Code inputs are each stage's import closure (deepfake_detection.stagedeps), file by file.


rule train:
    input:
        code_deps("train"),
        prepared_dir,
    output:
        "data/models/{variant}/model.pt",
        "data/models/{variant}/val_scores.csv",
        directory("data/models/{variant}/seeds"),
        "metrics/train/{variant}.json",
        "metrics/dvclive/{variant}/metrics.json",
        directory("metrics/dvclive/{variant}/plots/metrics"),
    log:
        "logs/train/{variant}.log",
    threads: workflow.cores
    params:
        params_yaml=read_keys("train", "variants.{variant}", "compute"),
        prepared=prepared_dir,
    shell:
        "python stages/train.py --variant {wildcards.variant} --prepared {params.prepared}"
        " --model data/models/{wildcards.variant}/model.pt"
        " --val-scores data/models/{wildcards.variant}/val_scores.csv"
        " --seed-models data/models/{wildcards.variant}/seeds"
        " --metrics metrics/train/{wildcards.variant}.json"
        " --live metrics/dvclive/{wildcards.variant}"
        " --timings logs/train/{wildcards.variant}.json"
        " --checkpoint data/checkpoints/{wildcards.variant}/last.pt 2> {log}"


rule evaluate:
    input:
        code_deps("evaluate"),
        prepared_dir,
        "data/models/{variant}/model.pt",
        "data/models/{variant}/val_scores.csv",
        "data/models/{variant}/seeds",
    output:
        directory("data/eval/{variant}"),
        directory("metrics/eval/{variant}"),
        directory("metrics/roc/{variant}"),
    log:
        "logs/evaluate/{variant}.log",
    params:
        params_yaml=read_keys("train", "variants.{variant}", "evaluate.batch_size",
                              "evaluate.bootstrap", "evaluate.test_sets", "compute"),
        prepared=prepared_dir,
    shell:
        "python stages/evaluate.py --variant {wildcards.variant} --prepared {params.prepared}"
        " --model data/models/{wildcards.variant}/model.pt"
        " --val-scores data/models/{wildcards.variant}/val_scores.csv"
        " --seed-models data/models/{wildcards.variant}/seeds"
        " --metrics-dir metrics/eval/{wildcards.variant} --scores-dir data/eval/{wildcards.variant}"
        " --roc-dir metrics/roc/{wildcards.variant} 2> {log}"


rule report:
    input:
        code_deps("report"),
        expand("metrics/eval/{variant}", variant=VARIANTS),
        expand("data/eval/{variant}", variant=VARIANTS),
    output:
        "metrics/leaderboard.md",
    log:
        "logs/report.log",
    params:
        params_yaml=read_keys("variants", "evaluate.test_sets", "evaluate.bootstrap"),
    shell:
        "python stages/report.py --metrics-root metrics/eval --scores-root data/eval"
        " --out metrics/leaderboard.md 2> {log}"
