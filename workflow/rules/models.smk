# train@<variant> -> evaluate@<variant>-<test_set> -> report (see dvc.yaml for the same stages).
# Code inputs are each stage's import closure (deepfake_detection.stagedeps), file by file.


rule train:
    input:
        code_deps("train"),
        "data/prepared",
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
    shell:
        "python stages/train.py --variant {wildcards.variant} --prepared data/prepared"
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
        "data/prepared",
        "data/models/{variant}/model.pt",
        "data/models/{variant}/val_scores.csv",
        "data/models/{variant}/seeds",
    output:
        "data/eval/{variant}/{test_set}_scores.csv",
        "metrics/eval/{variant}/{test_set}.json",
        "metrics/roc/{variant}-{test_set}.csv",
    log:
        "logs/evaluate/{variant}-{test_set}.log",
    params:
        params_yaml=read_keys("train", "variants.{variant}", "evaluate.batch_size",
                              "evaluate.bootstrap", "evaluate.test_sets.{test_set}", "compute"),
    shell:
        "python stages/evaluate.py --variant {wildcards.variant} --test-set {wildcards.test_set}"
        " --prepared data/prepared --model data/models/{wildcards.variant}/model.pt"
        " --val-scores data/models/{wildcards.variant}/val_scores.csv"
        " --seed-models data/models/{wildcards.variant}/seeds"
        " --metrics metrics/eval/{wildcards.variant}/{wildcards.test_set}.json"
        " --scores data/eval/{wildcards.variant}/{wildcards.test_set}_scores.csv"
        " --roc metrics/roc/{wildcards.variant}-{wildcards.test_set}.csv 2> {log}"


rule report:
    input:
        code_deps("report"),
        expand("metrics/eval/{variant}/{test_set}.json", variant=VARIANTS, test_set=TEST_SETS),
        expand("data/eval/{variant}/{test_set}_scores.csv", variant=VARIANTS, test_set=TEST_SETS),
    output:
        "metrics/leaderboard.md",
    log:
        "logs/report.log",
    params:
        params_yaml=read_keys("variants", "evaluate.test_sets", "evaluate.bootstrap"),
    shell:
        "python stages/report.py --metrics-root metrics/eval --scores-root data/eval"
        " --out metrics/leaderboard.md 2> {log}"
