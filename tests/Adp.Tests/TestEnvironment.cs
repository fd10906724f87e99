using Adp.Data;

namespace Adp.Tests;

/// <summary>Where tests find data and reference vectors. When the environment variable is set (CI sets both),
/// a missing file is a failure; when unset, tests that need the files are skipped.</summary>
public static class TestEnvironment
{
    public const string ReferenceVariable = "ADP_REFERENCE_DIR";

    public static string? ReferenceDir => Environment.GetEnvironmentVariable(ReferenceVariable);
    public static string? DataDir => Environment.GetEnvironmentVariable(DataDirectory.EnvironmentVariable);

    public static string ReferenceFile(string name)
    {
        var dir = ReferenceDir ?? throw new InvalidOperationException($"{ReferenceVariable} is not set");
        var path = Path.Combine(dir, name);
        Assert.True(File.Exists(path), $"reference vector file {path} is missing");
        return path;
    }

    public static string RequireDataDir() => DataDir ?? throw new InvalidOperationException($"{DataDirectory.EnvironmentVariable} is not set");
}

/// <summary>A test that needs ../shared/reference (found through ADP_REFERENCE_DIR).</summary>
public sealed class ReferenceFactAttribute : FactAttribute
{
    public ReferenceFactAttribute()
    {
        if (TestEnvironment.ReferenceDir is null) Skip = $"{TestEnvironment.ReferenceVariable} not set";
    }
}

/// <summary>A test that needs the real data sets (found through ADP_DATA_DIR).</summary>
public sealed class DataFactAttribute : FactAttribute
{
    public DataFactAttribute()
    {
        if (TestEnvironment.DataDir is null) Skip = $"{DataDirectory.EnvironmentVariable} not set";
    }
}
