using Adp.Evaluation;
using Adp.Purification;
using Xunit;

namespace Adp.Tests;

/// <summary>The one comparison behind the snapshot-curve and tuning folders' refusals: it must name every differing field,
/// the measurement's own ones included, and nothing that agrees.</summary>
public class MeasurementFingerprintTests
{
    private static readonly SnapshotCurve.Fingerprint Curve =
        new("mnist validation 0…255", "aa", new PurifierSettings(), 4, "pgd eps 0.3", 0);
    private static readonly PresetTuning.Fingerprint Tuning = new("mnist validation 0…255", "aa", "bb", 4, "pgd eps 0.3", 0);

    [Fact]
    public void Differences_NameEachDifferingField_AndOnlyThose()
    {
        Assert.Equal("", MeasurementFingerprint.Differences(Curve, Curve));
        Assert.Equal("no fingerprint", MeasurementFingerprint.Differences(null, Curve));
        var changed = Curve with { Data = "x", ClassifierSha256 = "cc", Runs = 2, Attack = "y", Seed = 7 };
        var all = MeasurementFingerprint.Differences(Curve, changed, "purifier p");
        Assert.Equal("data 'mnist validation 0…255', not 'x'; another classifier file; purifier p; S=4, not 2; " +
                     "attack pgd eps 0.3, not y; seed 0, not 7", all);
        Assert.Equal("seed 0, not 1", MeasurementFingerprint.Differences(Tuning, Tuning with { Seed = 1 }, (string?)null));
    }

    /// <summary>Each measurement adds its own field: the purifier for a snapshot curve, the score model for a tuning.</summary>
    [Fact]
    public void EachMeasurement_ReportsItsOwnField()
    {
        var e = Assert.Throws<AdpException>(() => RefuseCurve(Curve with { Purifier = new PurifierSettings(Sigma: 0.1) }));
        Assert.Contains("purifier", e.Message);
        Assert.DoesNotContain("S=", e.Message);
        var t = Assert.Throws<AdpException>(() => RefuseTuning(Tuning with { ScoreSha256 = "dd" }));
        Assert.Contains("another score-model file", t.Message);
        Assert.DoesNotContain("classifier", t.Message);
    }

    // The constructors compare a stored folder's fingerprint with the given one; the state files are written as the classes do.
    private static void RefuseCurve(SnapshotCurve.Fingerprint now) => WithState("snapshots.json",
        System.Text.Json.JsonSerializer.Serialize(new { Fingerprint = Curve, Points = Array.Empty<object>() }),
        dir => new SnapshotCurve(null!, null!, new PurifierSettings(), 4, null!, 0, TorchSharp.torch.CPU, dir, now));

    private static void RefuseTuning(PresetTuning.Fingerprint now) => WithState("tune.json",
        System.Text.Json.JsonSerializer.Serialize(new { Fingerprint = Tuning, Points = Array.Empty<object>() }),
        dir => new PresetTuning(null!, null!, null!, 4, null!, 0, TorchSharp.torch.CPU, dir, now));

    private static void WithState(string file, string json, Action<string> open)
    {
        var dir = Directory.CreateTempSubdirectory("adp-fp-").FullName;
        try { File.WriteAllText(Path.Combine(dir, file), json); open(dir); }
        finally { Directory.Delete(dir, true); }
    }
}
