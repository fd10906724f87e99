using Adp.Serving.Batching;
using Adp.Serving.Inference;

namespace Adp.Serving.Api;

/// <summary>The defense's settings, as every answer reports them. <c>Variant</c> is the purifier's key ("adp", or e.g.
/// "reinject sigmas=0.15/0.15", which reads no single σ); <c>MaxSteps</c> the most steps one run takes (re-injection: T per
/// stage), what a run's steps taken count against.</summary>
public sealed record SettingsInfo(
    string Preset, string Purifier, double Sigma, int Steps, double Lambda, double Delta, double AlphaMin, double AlphaMax,
    double Tau, bool Faithful, int Runs, string Rule, string Classifier, string ScoreModel, string Dataset, int[] Shape,
    string Variant, int MaxSteps)
{
    public static SettingsInfo Of(DefenseModels m) => new(
        m.Preset, m.Purifier.Describe(), m.Settings.Sigma, m.Settings.Steps, m.Settings.Lambda, m.Settings.Delta, m.Settings.AlphaMin,
        m.Settings.AlphaMax, m.Settings.Tau, m.Settings.Faithful, m.Runs, m.Rule.ToString(), Path.GetFileName(m.ClassifierInfo.Path),
        Path.GetFileName(m.ScoreInfo.Path), m.ClassifierInfo.Dataset, [m.Channels, m.ImageSize, m.ImageSize], m.Variant.Key,
        m.Variant.MaxSteps(m.Settings));
}

/// <summary>POST /v1/classify: the defended label and class name; the decision rule's class probabilities, in the
/// order of <c>classes</c>; the label each purification run voted for and the steps it took; the seed (send it back
/// to get the same answer); the settings; and the batch the image was purified in.</summary>
public sealed record ClassifyResponse(
    int Label, string ClassName, float[] Probabilities, IReadOnlyList<string> Classes, int[] Votes, int[] Steps, long Seed,
    SettingsInfo Settings, BatchInfo Batch);

/// <summary>POST /v1/purify?trajectory=true: the purified image and x₀ (the noisy start) then each step's iterate,
/// all PNGs (base64), for one purification run — the noise of run 1 of /v1/classify with the same seed.</summary>
public sealed record PurifyResponse(long Seed, int StepsTaken, byte[] Purified, byte[][] Trajectory, SettingsInfo Settings, BatchInfo Batch);

/// <summary>The body of a JSON request: pixels in [0,1] (C×H×W or H×W nested, or flat C·H·W) and an optional seed.</summary>
public sealed record PixelsRequest(double[][][] Pixels, long? Seed);

/// <summary>A refused or failed request: one line saying what was wrong and what was expected.</summary>
public sealed record ErrorResponse(string Error, int Status);

/// <summary>GET /healthz.</summary>
public sealed record HealthResponse(string Status, bool ModelsLoaded, string Classifier, string ScoreModel, int QueueLength, int QueueCapacity);

/// <summary>GET /v1/info: what the service runs and its limits.</summary>
public sealed record InfoResponse(SettingsInfo Settings, IReadOnlyList<string> Classes, int MaxBatch, double MaxWaitMs, int QueueCapacity,
    long MaxUploadBytes);
