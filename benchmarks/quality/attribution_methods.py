"""Attribution methods x trainings on synthetic data with known ground truth (issue: baselines benchmark).

    python -m benchmarks.quality.attribution_methods         # 3 seeds, both noise models
    python -m benchmarks.quality.attribution_methods --quick --seeds 1     # under 5 minutes on 2 cores

Same as `xcebra benchmark attribution`; writes benchmarks/results/attribution_methods.{md,csv,json,png}.
"""

from xcebra.benchmark import main

if __name__ == "__main__":
    main()
