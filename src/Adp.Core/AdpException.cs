namespace Adp;

/// <summary>
/// An error caused by the user's input (a file, a folder, an option). Its message is one line that
/// names what was wrong and what was expected; the CLI prints it without a stack trace.
/// </summary>
public class AdpException : Exception
{
    public AdpException(string message) : base(message) { }
    public AdpException(string message, Exception inner) : base(message, inner) { }
}
