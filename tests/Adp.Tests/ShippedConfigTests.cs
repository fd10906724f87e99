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

    /// <summary>A config named "tuned" runs the data set's tuned preset: when a preset is re-tuned, its configs must follow
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
        Assert.Equal(Purification.PurifierPresets.Get(config.Dataset), config.Purifier);
    }
}
