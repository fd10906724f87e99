using Adp.Data;

namespace Adp.Tests;

/// <summary>Where tests find data and reference vectors. When the environment variable is set (CI sets both),
/// a missing file is a failure; when unset, tests that need the files are skipped.</summary>
public static class TestEnvironment
{
    /// <summary>The native runtime settings before any test runs: the CLI's C++ log level, and oneDNN off everywhere unless
    /// ADP_MKLDNN says otherwise. The CLI switches oneDNN off only while it computes a gradient, a process-wide switch; with
    /// tests running in parallel, one test's gradient would move another's forward pass to other kernels mid-way (equal to
    /// float rounding only), and the suite's exact-reproduction checks (resumed evaluations, seed replays) flake.
    /// NativeRuntimeTests checks the CLI's mode in its own non-parallel collection.</summary>
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void ConfigureNativeRuntime() =>
        NativeRuntime.Configure(Environment.GetEnvironmentVariable(NativeRuntime.MkldnnVariable) ?? "0");

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

    public const string CasesVariable = "ADP_CASES_DIR";

    /// <summary>The repository root (the folder holding Adp.slnx above the test binaries).</summary>
    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Adp.slnx"))) return dir.FullName;
            throw new InvalidOperationException("Adp.slnx not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>A shipped model file under models/.</summary>
    public static string Model(string name) => Path.Combine(RepoRoot, "models", name);

    /// <summary>The failing-input cases (../shared/cases): $ADP_CASES_DIR, else the folder "shared/cases" next to the
    /// repository root (found by walking up from the test binaries to Adp.slnx); null when neither exists.</summary>
    public static string? CasesDir
    {
        get
        {
            var env = Environment.GetEnvironmentVariable(CasesVariable);
            if (!string.IsNullOrEmpty(env)) return env;
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Adp.slnx")))
                {
                    var cases = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "cases"));
                    return Directory.Exists(cases) ? cases : null;
                }
            return null;
        }
    }

    /// <summary>A file of the cases folder; a failure if the folder is there but the file is not.</summary>
    public static string CaseFile(string name)
    {
        var dir = CasesDir ?? throw new InvalidOperationException($"{CasesVariable} is not set and ../shared/cases is absent");
        var path = Path.Combine(dir, name);
        Assert.True(File.Exists(path), $"case file {path} is missing");
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

/// <summary>A test that needs the failing-input cases (../shared/cases, or ADP_CASES_DIR).</summary>
public sealed class CasesFactAttribute : FactAttribute
{
    public CasesFactAttribute()
    {
        if (TestEnvironment.CasesDir is null)
            Skip = $"cases folder not found: set {TestEnvironment.CasesVariable} or put it at <repo>/../shared/cases";
    }
}

/// <summary>A theory that needs the failing-input cases (../shared/cases, or ADP_CASES_DIR).</summary>
public sealed class CasesTheoryAttribute : TheoryAttribute
{
    public CasesTheoryAttribute()
    {
        if (TestEnvironment.CasesDir is null)
            Skip = $"cases folder not found: set {TestEnvironment.CasesVariable} or put it at <repo>/../shared/cases";
    }
}
