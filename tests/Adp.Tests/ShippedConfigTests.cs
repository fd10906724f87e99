using Adp.Evaluation;

namespace Adp.Tests;

/// <summary>Every evaluation configuration shipped in configs/ loads and validates (a typo would otherwise surface only
/// hours into a background evaluation), names a data set the toolkit knows, and points at files under models/.</summary>
public class ShippedConfigTests
{
    public static TheoryData<string> Configs()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(TestEnvironment.RepoRoot, "configs"), "*.json").Order()) data.Add(Path.GetFileName(f));
        return data;
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void ShippedConfig_LoadsAndValidates(string name)
    {
        var config = RobustConfig.Load(Path.Combine(TestEnvironment.RepoRoot, "configs", name));
        config.Validate();
        Data.DatasetRegistry.Get(config.Dataset);
        Assert.StartsWith("models/", config.Classifier);
        Assert.StartsWith("models/", config.Score);
        Assert.NotEmpty(config.Attacks);
    }

    /// <summary>A config named "tuned" runs the data set's tuned preset (settings and variant), or, named "-adv" too, the preset tuned for
    /// the adversarially trained classifier where the data set has one (`mnist-adv`): when a preset is re-tuned, its configs must follow
    /// (the evidence table and the ε sweeps would otherwise report an old setting under the new name).</summary>
    public static TheoryData<string> TunedConfigs()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(TestEnvironment.RepoRoot, "configs"), "*tuned*.json").Order()) data.Add(Path.GetFileName(f));
        Assert.NotEmpty(data);
        return data;
    }

    [Theory]
    [MemberData(nameof(TunedConfigs))]
    public void TunedConfig_HoldsItsDataSetsPreset(string name)
    {
        var config = RobustConfig.Load(Path.Combine(TestEnvironment.RepoRoot, "configs", name));
        var presets = Purification.PurifierPresets.All;
        var preset = name.Contains("-adv") && presets.TryGetValue(config.Dataset + "-adv", out var adv) ? adv : presets[config.Dataset];
        if (name.Contains("-adv")) Assert.Contains("-adv", config.Classifier);
        Assert.Equal(preset.Settings, config.Purifier);
        Assert.Equal(preset.EffectiveVariant.Key, config.EffectiveVariant.Key);  // the variant too (re-injection for MNIST)
    }
}

/// <summary>Every report under results/ that recorded its models' SHA-256 names files under models/ with those very bytes:
/// when a model is replaced under the same name, the reports made with the old file must name the old one (as
/// `mnist-score-v1.ckpt` does), or a reader re-running the command would get another model than the numbers came from.</summary>
public class ShippedResultsTests
{
    public static TheoryData<string> Reports()
    {
        var data = new TheoryData<string>();
        foreach (var d in Directory.GetDirectories(Path.Combine(TestEnvironment.RepoRoot, "results")).Order())
            if (File.Exists(Path.Combine(d, "results.json"))) data.Add(Path.GetFileName(d));
        Assert.NotEmpty(data);
        return data;
    }

    [Theory]
    [MemberData(nameof(Reports))]
    public void ShippedReport_NamesTheModelFilesItsFingerprintRecorded(string folder)
    {
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(TestEnvironment.RepoRoot, "results", folder,
            "results.json")));
        var config = json.RootElement.GetProperty("config");
        var fingerprint = json.RootElement.GetProperty("fingerprint");
        foreach (var (pathKey, shaKey) in new[] { ("Classifier", "classifier sha256"), ("Score", "score model sha256") })
        {
            // Reports converted from the first progress format recorded no hashes ("?"): nothing to check there.
            var recorded = fingerprint.TryGetProperty(shaKey, out var s) ? s.GetString() : null;
            if (recorded == "?") continue;
            Assert.True(recorded is { Length: 64 }, $"{folder}: {shaKey} is '{recorded}', expected 64 hex digits or '?'");
            var path = config.GetProperty(pathKey).GetString()!;
            var file = Path.Combine(TestEnvironment.RepoRoot, path);
            Assert.True(File.Exists(file), $"{folder}: {pathKey} {path} does not exist");
            var actual = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(file)));
            Assert.True(actual == recorded, $"{folder}: {pathKey} {path} has SHA-256 {actual}, the report recorded {recorded}");
        }
    }
}
