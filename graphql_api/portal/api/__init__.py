"""The portal's GraphQL: its own small schema on ``/portal/graphql``, and the staff
operations on portal accounts and erasure."""
