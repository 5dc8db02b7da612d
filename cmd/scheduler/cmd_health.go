package main

func runHealth(args []string) int   { return exitUsage }
func runCheck(args []string) int    { return exitUsage }
func runRecovery(args []string) int { return exitUsage }
func runDev(args []string) int      { return exitUsage }
