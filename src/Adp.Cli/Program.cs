Console.WriteLine("adp");
