using Adp.Data;
using Adp.Models;
using Adp.Purification;
using static TorchSharp.torch;

namespace Adp.Serving.Inference;

/// <summary>
/// The defense the service runs, loaded once at start-up: a classifier and a score model for the same images, the
/// purifier settings (a preset, possibly with single fields overridden), the number of runs S and the decision rule.
/// Only the batch worker's thread runs the networks.
/// </summary>
public sealed class DefenseModels : IDisposable
{
    public DefenseModels(Classifier classifier, ClassifierInfo classifierInfo, Ncsnv2 score, ScoreModelInfo scoreInfo,
        string preset, PurifierSettings settings, int runs, DecisionRule rule, Device? device = null, PurifierVariant? variant = null)
    {
        if (classifierInfo.Config.Channels != scoreInfo.Config.Channels || classifierInfo.Config.ImageSize != scoreInfo.Config.ImageSize)
            throw new AdpException($"{classifierInfo.Path}: classifier takes {classifierInfo.Config.Channels}×{classifierInfo.Config.ImageSize}² images " +
                                   $"but the score model {scoreInfo.Path} takes {scoreInfo.Config.Channels}×{scoreInfo.Config.ImageSize}²");
        settings.Validate();
        Classifier = classifier;
        ClassifierInfo = classifierInfo;
        Score = score;
        ScoreInfo = scoreInfo;
        Preset = preset;
        Settings = settings;
        Rule = rule;
        Device = device ?? CPU;
        Variant = variant ?? PurifierVariant.Adp;
        Purifier = Variant.Create(score, settings);
        Defense = new DefendedClassifier(classifier, Purifier, runs);
        var names = DatasetRegistry.All.FirstOrDefault(d => d.Name == classifierInfo.Dataset)?.ClassNames;
        ClassNames = names is not null && names.Count == classifierInfo.Config.NumClasses
            ? [.. names]
            : [.. Enumerable.Range(0, classifierInfo.Config.NumClasses).Select(k => k.ToString())];
    }

    public Classifier Classifier { get; }
    public ClassifierInfo ClassifierInfo { get; }
    public Ncsnv2 Score { get; }
    public ScoreModelInfo ScoreInfo { get; }
    public string Preset { get; }
    public PurifierSettings Settings { get; }
    public DecisionRule Rule { get; }
    public Device Device { get; }
    /// <summary>The purifier variant the preset or flags chose (ADP itself unless a variant was named).</summary>
    public PurifierVariant Variant { get; }
    public IPurifier Purifier { get; }
    public DefendedClassifier Defense { get; }
    public int Runs => Defense.Runs;
    public int Channels => ScoreInfo.Config.Channels;
    public int ImageSize => ScoreInfo.Config.ImageSize;
    public int PixelCount => Channels * ImageSize * ImageSize;
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>"1×28×28" and the like, for error messages.</summary>
    public string ShapeText => $"{Channels}×{ImageSize}×{ImageSize}";

    public void Dispose()
    {
        Classifier.Dispose();
        Score.Dispose();
    }
}
