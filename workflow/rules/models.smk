# train@<variant> -> evaluate@<variant>-<test_set> -> report (see dvc.yaml for the same stages).


rule train:
    input:
        code(
            "stages/train.py",
            "deepfake_detection/models",
            "deepfake_detection/training",
            "deepfake_detection/evaluation/metrics.py",
            "deepfake_detection/evaluation/seeds.py",
            "deepfake_detection/data/prepared.py",
            "deepfake_detection/data/transforms.py",
            "deepfake_detection/io.py",
        ),
        "data/prepared",
    output:
        "data/models/{variant}/model.pt",
        "data/models/{variant}/val_scores.csv",
        directory("data/models/{variant}/seeds"),
        "metrics/train/{variant}.json",
        "metrics/history/{variant}.csv",
    log:
        "logs/train/{variant}.log",
    threads: workflow.cores
    params:
        train=config["train"],
        variant=lambda w: config["variants"][w.variant],
    conda:
        "../../environment.yml"
    shell:
        "python stages/train.py --variant {wildcards.variant} --prepared data/prepared"
        " --model data/models/{wildcards.variant}/model.pt"
        " --val-scores data/models/{wildcards.variant}/val_scores.csv"
        " --seed-models data/models/{wildcards.variant}/seeds"
        " --metrics metrics/train/{wildcards.variant}.json"
        " --history metrics/history/{wildcards.variant}.csv"
        " --checkpoint data/checkpoints/{wildcards.variant}/last.pt 2> {log}"


rule evaluate:
    input:
        code(
            "stages/evaluate.py",
            "deepfake_detection/evaluation/metrics.py",
            "deepfake_detection/evaluation/bootstrap.py",
            "deepfake_detection/evaluation/seeds.py",
            "deepfake_detection/io.py",
            "deepfake_detection/models",
            "deepfake_detection/training/engine.py",
            "deepfake_detection/data/prepared.py",
            "deepfake_detection/data/transforms.py",
        ),
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
        train=config["train"],
        variant=lambda w: config["variants"][w.variant],
        batch_size=config["evaluate"]["batch_size"],
        bootstrap=config["evaluate"]["bootstrap"],
        test_set=lambda w: config["evaluate"]["test_sets"][w.test_set],
    conda:
        "../../environment.yml"
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
        code(
            "stages/report.py",
            "deepfake_detection/evaluation/report.py",
            "deepfake_detection/evaluation/bootstrap.py",
            "deepfake_detection/evaluation/metrics.py",
        ),
        expand("metrics/eval/{variant}/{test_set}.json", variant=VARIANTS, test_set=TEST_SETS),
        expand("data/eval/{variant}/{test_set}_scores.csv", variant=VARIANTS, test_set=TEST_SETS),
    output:
        "metrics/leaderboard.md",
    log:
        "logs/report.log",
    params:
        variants=config["variants"],
        test_sets=config["evaluate"]["test_sets"],
        bootstrap=config["evaluate"]["bootstrap"],
    conda:
        "../../environment.yml"
    shell:
        "python stages/report.py --metrics-root metrics/eval --scores-root data/eval"
        " --out metrics/leaderboard.md 2> {log}"
