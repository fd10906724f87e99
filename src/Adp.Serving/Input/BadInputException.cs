namespace Adp.Serving.Input;

/// <summary>A request the service refuses: an HTTP 4xx status and a one-line message saying what was wrong and
/// what was expected. The error middleware turns it into <c>{"error": "…", "status": N}</c>.</summary>
public sealed class BadInputException(int status, string message) : Exception(OneLine(message))
{
    public int Status { get; } = status;

    public static string OneLine(string text) => string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries)).Trim();
}
