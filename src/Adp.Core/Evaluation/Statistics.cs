namespace Adp.Evaluation;

/// <summary>Uncertainty of accuracies measured on n images.</summary>
public static class Statistics
{
    /// <summary>Wilson score interval for a binomial proportion (95% by default); well-behaved at 0% and 100%.</summary>
    public static (double Low, double High) Wilson(long successes, long n, double z = 1.959963984540054)
    {
        if (n == 0) return (0, 1);
        double p = (double)successes / n, z2 = z * z;
        double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
        double half = z * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / (1 + z2 / n);
        return (Math.Max(0, centre - half), Math.Min(1, centre + half));
    }

    /// <summary>Percentile bootstrap (95% by default) of the mean of <paramref name="values"/>, resampling the values
    /// (the clusters, e.g. images) with replacement <paramref name="resamples"/> times from a seeded generator.</summary>
    public static (double Low, double High) ClusterBootstrap(IReadOnlyList<double> values, int resamples = 2000, long seed = 0, double level = 0.95)
    {
        int n = values.Count;
        if (n == 0) return (0, 1);
        var rng = new Random(Adp.Training.Seeds.MixInt(seed, n));
        var means = new double[resamples];
        for (int b = 0; b < resamples; b++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += values[rng.Next(n)];
            means[b] = sum / n;
        }
        Array.Sort(means);
        double tail = (1 - level) / 2;
        return (means[(int)Math.Floor(tail * (resamples - 1))], means[(int)Math.Ceiling((1 - tail) * (resamples - 1))]);
    }

    public static (double Mean, double Std) MeanStd(IReadOnlyList<double> xs)
    {
        if (xs.Count == 0) return (double.NaN, double.NaN);
        double m = xs.Average();
        double s = xs.Count > 1 ? Math.Sqrt(xs.Sum(x => (x - m) * (x - m)) / (xs.Count - 1)) : 0;
        return (m, s);
    }

    public static string FormatAccuracy(long correct, long n)
    {
        var (lo, hi) = Wilson(correct, n);
        return $"{100.0 * correct / n:F2}% [{100 * lo:F1}, {100 * hi:F1}]";
    }
}
