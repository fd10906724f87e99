namespace Adp.Data;

/// <summary>Where data sets live: the --data-dir option, else ADP_DATA_DIR, else a per-user cache folder.</summary>
public static class DataDirectory
{
    public const string EnvironmentVariable = "ADP_DATA_DIR";

    public static string Resolve(string? option)
    {
        if (!string.IsNullOrWhiteSpace(option)) return Path.GetFullPath(option);
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env)) return Path.GetFullPath(env);
        return DefaultCacheFolder();
    }

    public static string DefaultCacheFolder()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrWhiteSpace(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "adp", "data");
    }
}
