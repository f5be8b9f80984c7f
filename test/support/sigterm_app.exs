# Run by test/h2flow/shutdown_test.exs in a VM of its own (`elixir -pa <h2flow ebin> this
# file`): an application whose tree holds an h2flow server, as in a release. Prints the port
# and "handler started" for each request; the handler takes 1.5 s. The test sends the VM a
# SIGTERM, which stops its applications (init:stop/0), the server drains.

defmodule SigtermApp.Handler do
  @behaviour H2Flow.Handler

  @impl true
  def init(req, state) do
    IO.puts("handler started")
    Process.sleep(1_500)
    {:ok, H2Flow.Req.reply(200, %{}, "slept", req), state}
  end
end

defmodule SigtermApp do
  use Application

  @impl true
  def start(_type, _args) do
    children = [{H2Flow, handler: SigtermApp.Handler, port: 0, ip: {127, 0, 0, 1}}]
    Supervisor.start_link(children, strategy: :one_for_one, name: SigtermApp.Supervisor)
  end
end

spec = [
  description: ~c"h2flow SIGTERM test",
  vsn: ~c"0",
  modules: [SigtermApp],
  registered: [],
  applications: [:kernel, :stdlib, :ssl],
  mod: {SigtermApp, []}
]

:ok = :application.load({:application, :sigterm_app, spec})
{:ok, _} = Application.ensure_all_started(:sigterm_app)
[{_, server, _, _}] = Supervisor.which_children(SigtermApp.Supervisor)
IO.puts("port #{H2Flow.port(server)}")
Process.sleep(:infinity)
